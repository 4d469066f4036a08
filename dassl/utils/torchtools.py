"""Checkpoint files and small model helpers with Dassl's names.

Checkpoints are written atomically (temp file + ``os.replace``), so a run killed while saving never leaves a
truncated file. They are read with ``torch.load(weights_only=True)``. Files written by upstream Dassl pickle
Python objects (the LR scheduler, holding the optimizer); those are read with the same weights-only unpickler,
which then also accepts optimizer / scheduler classes as inert placeholders holding their plain data: nothing
is imported or executed, and nothing else is accepted.
"""

from __future__ import annotations

import contextlib
import io
import os
import os.path as osp
import pickle
import pickletools
import random
import re
import warnings
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .errors import UserError
from .faults import fault_point
from .tools import FileWriteError, atomic_write_text, mkdir_if_missing, temp_file_beside, write_failed

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "resume_from_checkpoint",
    "load_pretrained_weights",
    "count_num_param",
    "open_all_layers",
    "open_specified_layers",
    "init_network_weights",
    "get_rng_state",
    "set_rng_state",
    "preserved_rng_state",
    "UntrustedObject",
    "UnsafeCheckpointError",
    "CheckpointReadError",
    "CheckpointNotFoundError",
    "pickled_globals",
]


# ----------------------------------------------------------------------------------------------------------
# saving


def atomic_torch_save(obj: Any, fpath: str) -> None:
    """``torch.save`` to a temp file in the same folder (usual permissions), then rename over ``fpath``.

    A failed write (full disk: torch reports ``basic_ios::clear: iostream error`` or ``file write failed``) is a
    ``FileWriteError`` naming the file; the previous file stays as it was.
    """
    fd, tmp = temp_file_beside(fpath)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        fault_point("checkpoint-write")
        os.replace(tmp, fpath)
    except BaseException as err:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, FileWriteError) or _is_write_error(err):
            raise write_failed(fpath, err) from err
        raise


def _is_write_error(err: BaseException) -> bool:
    """torch's C++ writer reports I/O failures as RuntimeErrors."""
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(s in text for s in ("iostream", "write failed", "failed writing"))


def save_checkpoint(
    state: dict,
    save_dir: str,
    is_best: bool = False,
    remove_module_from_keys: bool = True,
    model_name: str = "",
    update_pointer: bool = True,
) -> str:
    """Save ``state`` to ``save_dir/<model_name or model.pth.tar-{epoch}>`` and record it in ``save_dir/checkpoint``.

    ``state`` holds ``state_dict`` and ``epoch`` (Dassl also stores ``optimizer``, ``scheduler``, ``val_result``).
    With ``is_best`` a copy is kept as ``model-best.pth.tar``. ``update_pointer=False`` leaves ``checkpoint`` (the
    file a resume reads) alone: the engine points it only at the last file an epoch writes. Returns the path written.
    """
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state = dict(state)
        state["state_dict"] = OrderedDict(
            (k[7:] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items()
        )
    if not model_name:
        model_name = f"model.pth.tar-{state['epoch']}"
    fpath = osp.join(save_dir, model_name)
    atomic_torch_save(state, fpath)
    print(f"Checkpoint saved to {fpath}")
    if update_pointer:
        atomic_write_text(osp.join(save_dir, "checkpoint"), f"{osp.basename(fpath)}\n")
    fault_point("checkpoint-saved")
    if is_best:
        best_fpath = osp.join(save_dir, "model-best.pth.tar")
        atomic_torch_save(state, best_fpath)
        print(f'Best checkpoint saved to "{best_fpath}"')
    return fpath


# ----------------------------------------------------------------------------------------------------------
# loading


class UntrustedObject:
    """Stands in for an optimizer / scheduler object found in a legacy pickle: its class is never imported, its
    pickled state (plain data) is kept in ``state``."""

    qualname = "?"
    args: tuple = ()
    kwargs: dict = {}
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<untrusted {self.qualname} (not imported)>"


class UnsafeCheckpointError(UserError, pickle.UnpicklingError):
    """A legacy checkpoint pickles something beyond tensors, containers and optimizer/scheduler data."""


class CheckpointReadError(UserError, OSError):
    """A checkpoint file that is missing, truncated or not a checkpoint."""


class CheckpointNotFoundError(CheckpointReadError, FileNotFoundError):
    """No file at the checkpoint path."""


# Classes of the objects upstream Dassl checkpoints pickle (the LR scheduler and, inside it, the optimizer):
# read as inert ``UntrustedObject`` placeholders holding their state, never imported.
_PLACEHOLDER_MODULES = re.compile(r"^(torch\.optim|dassl\.optim)(\.\w+)*$")


def _plain_defaultdict(default_factory: Any = None, *args: Any) -> dict:
    """``collections.defaultdict`` in a legacy pickle (an optimizer's ``state``) becomes a plain dict."""
    return dict(*args)


def pickled_globals(fpath: str) -> set[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL in a checkpoint's pickle (zip or legacy format), unexecuted."""
    if zipfile.is_zipfile(fpath):
        with zipfile.ZipFile(fpath) as archive:
            streams = [archive.read(n) for n in archive.namelist() if n.endswith("data.pkl")]
    else:
        with open(fpath, "rb") as f:
            streams = [f.read()]
    found: set[str] = set()
    for data in streams:
        stream = io.BytesIO(data)
        with contextlib.suppress(Exception):  # a legacy file continues with raw storage bytes after its pickles
            while stream.tell() < len(data):
                strings: list[str] = []
                for opcode, arg, _ in pickletools.genops(stream):
                    if opcode.name == "GLOBAL":
                        module, name = str(arg).split(" ", 1)
                        found.add(f"{'builtins' if module == '__builtin__' else module}.{name}")
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.add(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
    return found


def _legacy_safe_globals(names: set[str]) -> tuple[list[tuple[Any, str]], list[str]]:
    """What ``torch.load(weights_only=True)`` may additionally accept for a legacy Dassl checkpoint: placeholders
    for optimizer / scheduler classes and a plain dict for ``defaultdict``. Returns (safe globals, placeholders)."""
    extra: list[tuple[Any, str]] = []
    placeholders = []
    for full in sorted(names):
        module, _, name = full.rpartition(".")
        if _PLACEHOLDER_MODULES.match(module) and name.isidentifier():
            cls = type(name, (UntrustedObject,), {"qualname": full, "__module__": "untrusted"})
            extra.append((cls, full))
            placeholders.append(full)
    if "collections.defaultdict" in names:
        extra += [(_plain_defaultdict, "collections.defaultdict"), (dict, "builtins.dict")]
    return extra, placeholders


def _unpickler_reason(err: Exception) -> str:
    """The one line of torch's weights-only message that says what was refused."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    text = text.split(" Please use `torch.serialization", 1)[0]
    return " ".join(text.split())[:300]


def _read_failed(fpath: str, err: BaseException) -> CheckpointReadError:
    size = osp.getsize(fpath) if osp.isfile(fpath) else 0
    reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
    return CheckpointReadError(
        f"Cannot read checkpoint {fpath} ({size} bytes): {reason}. The file is truncated or corrupt (a copy or a "
        "save that was cut short) or not a torch checkpoint. Fix: copy or download it again; if a run wrote it, "
        "delete it and rerun the same command (training resumes from the previous checkpoint or starts over)."
    )


def load_checkpoint(fpath: str, map_location: Any = None) -> Any:
    """Load a checkpoint on CPU (or ``map_location``), safely.

    Our own files load with ``weights_only=True``. A legacy file that pickles Python objects (upstream Dassl
    checkpoints store the LR scheduler object) is read with the same weights-only unpickler, which additionally
    accepts only the optimizer / scheduler objects, as ``UntrustedObject`` placeholders holding their plain data
    (listed in a printed note). Anything else is refused (``UnsafeCheckpointError``); a truncated or corrupt file
    is a ``CheckpointReadError`` that names it.
    """
    if fpath is None or not osp.exists(fpath):
        raise CheckpointNotFoundError(f'Checkpoint file not found at "{fpath}"')
    if map_location is None:
        map_location = None if torch.cuda.is_available() else "cpu"
    try:
        return torch.load(fpath, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first_error: Exception = err
    except Exception as err:  # zip, EOF and seek errors of a truncated file all mean the same to the user
        raise _read_failed(fpath, err) from err
    extra, placeholders = _legacy_safe_globals(pickled_globals(fpath))
    if not extra:
        raise _unsafe(fpath, first_error)
    try:
        with torch.serialization.safe_globals(extra):
            checkpoint = torch.load(fpath, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _unsafe(fpath, err) from err
    except Exception as err:
        raise _read_failed(fpath, err) from err
    print(
        f"Note: {fpath} is a legacy checkpoint that pickles Python objects; it was read with the weights-only "
        f"unpickler and these were kept as data, not imported: {', '.join(placeholders) or 'none'}"
    )
    return checkpoint


def _unsafe(fpath: str, err: Exception) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"Refusing to load {fpath}: it pickles more than tensors, containers and optimizer/scheduler data "
        f"({_unpickler_reason(err)}). Nothing from it was imported or run. Use a checkpoint written by this "
        "toolkit or by upstream Dassl/PromptSRC; if you trust this file, convert it yourself to a plain state dict "
        "(torch.load(..., weights_only=False), then torch.save(state_dict, ...))."
    )


@contextlib.contextmanager
def preserved_rng_state():
    """Run a block without moving the python / numpy / torch RNG streams of the code around it.

    For work whose presence depends on a cache (building the teacher, sampling few-shot data): a warm cache must
    leave the random streams, and so the run's numbers, exactly as a cold one does.
    """
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def get_rng_state() -> dict:
    """The python / numpy / torch (and CUDA) RNG states, so a resumed run draws the same numbers."""
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_to_python_rng_state(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_plain(state: tuple) -> list:
    # Plain python values so the checkpoint stays loadable with weights_only=True.
    name, keys, pos, has_gauss, cached = state
    return [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _to_python_rng_state(state: Any) -> tuple:
    # After a weights_only round-trip tuples may come back as lists.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def resume_from_checkpoint(fdir: str, model: nn.Module, optimizer: Any = None, scheduler: Any = None) -> int:
    """Restore model, optimizer and scheduler from the file named in ``fdir/checkpoint``; return the start epoch."""
    with open(osp.join(fdir, "checkpoint"), encoding="utf-8") as checkpoint:
        model_name = checkpoint.readlines()[0].strip("\n")
        fpath = osp.join(fdir, model_name)
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_checkpoint(fpath)
    model.load_state_dict(checkpoint["state_dict"])
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch


def load_pretrained_weights(model: nn.Module, weight_path: str) -> None:
    """Load the keys whose names (without ``module.``) and shapes match; report the rest."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    model_dict = model.state_dict()
    new_state_dict = OrderedDict()
    matched_layers, discarded_layers = [], []
    for k, v in state_dict.items():
        if k.startswith("module."):
            k = k[7:]
        if k in model_dict and model_dict[k].size() == v.size():
            new_state_dict[k] = v
            matched_layers.append(k)
        else:
            discarded_layers.append(k)
    model_dict.update(new_state_dict)
    model.load_state_dict(model_dict)
    if not matched_layers:
        warnings.warn(
            f'Cannot load {weight_path} (check the key names manually)', stacklevel=2
        )
    else:
        print(f'Successfully loaded pretrained weights from "{weight_path}"')
        if discarded_layers:
            print(f"Layers discarded due to unmatched keys or size: {discarded_layers}")


def count_num_param(model: nn.Module | None = None, params: Any = None) -> int:
    """Number of parameters of a model (or of an iterable of tensors)."""
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if params is not None:
        return sum(p.numel() for p in params)
    raise ValueError("model and params must be provided")


def open_all_layers(model: nn.Module) -> None:
    """Make every layer trainable."""
    model.train()
    for p in model.parameters():
        p.requires_grad = True


def open_specified_layers(model: nn.Module, open_layers: str | list[str]) -> None:
    """Make only the named child layers trainable (and put them in train mode)."""
    if isinstance(model, nn.DataParallel):
        model = model.module
    if isinstance(open_layers, str):
        open_layers = [open_layers]
    for layer in open_layers:
        if not hasattr(model, layer):
            raise ValueError(f"{layer} is not an attribute of the model")
    for name, module in model.named_children():
        trainable = name in open_layers
        module.train(trainable)
        for p in module.parameters():
            p.requires_grad = trainable


def init_network_weights(model: nn.Module, init_type: str = "normal", gain: float = 0.02) -> None:
    """Initialise conv/linear/norm layers (Dassl's helper for models trained from scratch)."""

    def _init_func(m: nn.Module) -> None:
        classname = m.__class__.__name__
        if hasattr(m, "weight") and ("Conv" in classname or "Linear" in classname):
            if init_type == "normal":
                nn.init.normal_(m.weight.data, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight.data, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight.data, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight.data, gain=gain)
            else:
                raise NotImplementedError(f"initialization method {init_type} is not implemented")
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif "BatchNorm" in classname or "InstanceNorm" in classname:
            if getattr(m, "weight", None) is not None:
                nn.init.constant_(m.weight.data, 1.0)
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)

    model.apply(_init_func)
