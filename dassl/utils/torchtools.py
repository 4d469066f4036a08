"""Checkpoint files and small model helpers with Dassl's names.

Checkpoints are written atomically (temp file + ``os.replace``), so a run killed while saving never leaves a
truncated file. They are read with ``torch.load(weights_only=True)``. Files written by upstream Dassl pickle
Python objects (e.g. an LR scheduler); those are read with a restricted unpickler that rebuilds tensors and plain
containers and replaces every other class by an inert placeholder: nothing is imported or executed.
"""

from __future__ import annotations

import contextlib
import os
import os.path as osp
import pickle
import random
import tempfile
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .faults import fault_point
from .tools import atomic_write_text, mkdir_if_missing

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
]


# ----------------------------------------------------------------------------------------------------------
# saving


def atomic_torch_save(obj: Any, fpath: str) -> None:
    """``torch.save`` to a temp file in the same folder, then rename over ``fpath``."""
    dirname = osp.dirname(osp.abspath(fpath))
    mkdir_if_missing(dirname)
    fd, tmp = tempfile.mkstemp(dir=dirname, prefix=f".{osp.basename(fpath)}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        fault_point("checkpoint-write")
        os.replace(tmp, fpath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


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
    """Stands in for a class found in a legacy pickle that we refuse to import; keeps its args and state."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # A pickle may call what it built (``getattr(obj, "f")(...)``) or fill it like a dict or a list.
    def __call__(self, *args: Any, **kwargs: Any) -> UntrustedObject:
        return UntrustedObject(*args, **kwargs)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("elements", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("elements", []).extend(values)

    def __repr__(self) -> str:
        return f"<untrusted {self.qualname} (not imported)>"


def _allowed_globals() -> dict[str, Any]:
    from torch import _weights_only_unpickler

    return dict(_weights_only_unpickler._get_allowed_globals())


class _RestrictedUnpickler(pickle.Unpickler):
    """Only tensor-rebuilding functions and plain containers are real; every other global is a placeholder."""

    replaced: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        key = f"{module}.{name}"
        if key in allowed:
            return allowed[key]
        _RestrictedUnpickler.replaced.add(key)
        return type(name, (UntrustedObject,), {"qualname": key, "__module__": "untrusted"})


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs: an Unpickler class (and ``load`` for old formats)."""

    __name__ = "restricted_pickle"
    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return _RestrictedUnpickler(file, **kwargs).load()


def load_checkpoint(fpath: str, map_location: Any = None) -> Any:
    """Load a checkpoint on CPU (or ``map_location``), safely.

    Our own files load with ``weights_only=True``. A legacy file that pickles Python objects (upstream Dassl
    checkpoints store the LR scheduler object) is read with the restricted unpickler; the objects it could not
    import are listed in a printed note and appear as ``UntrustedObject`` placeholders.
    """
    if fpath is None or not osp.exists(fpath):
        raise FileNotFoundError(f'Checkpoint file not found at "{fpath}"')
    if map_location is None:
        map_location = None if torch.cuda.is_available() else "cpu"
    try:
        return torch.load(fpath, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass
    _RestrictedUnpickler.replaced = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        checkpoint = torch.load(
            fpath, map_location=map_location, weights_only=False, pickle_module=_RestrictedPickleModule
        )
    replaced = sorted(_RestrictedUnpickler.replaced)
    print(
        f"Note: {fpath} is a legacy checkpoint that pickles Python objects; it was read with a restricted "
        f"unpickler and these were not imported: {', '.join(replaced) or 'none'}"
    )
    return checkpoint


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
