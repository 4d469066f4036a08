"""The one place that turns a backbone name (``"ViT-B/16"``) into a CLIP model.

Resolution rule (docs/design.md#backbone-files): an explicit file (``MODEL.BACKBONE.PATH`` or, for the PromptKD teacher,
``TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH``) is loaded as given; otherwise the file is looked up in the CLIP cache
dir (``$CLIP_CACHE_DIR``, default ``~/.cache/clip``), then in ``./clip/`` (where the PromptKD repository keeps
them), under OpenAI's file name and checked against the SHA256 that OpenAI's download URL embeds. The model is built with open_clip from the checkpoint's own shapes (QuickGELU, as
OpenAI trained it), so tiny random checkpoints in the same format load through exactly the same code.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dassl.config import ConfigError
from dassl.utils.download import sha256_of_file
from dassl.utils.errors import UserError
from dassl.utils.torchtools import pickled_globals

if TYPE_CHECKING:  # open_clip is imported where a model is built: the download tool should start fast
    from open_clip.model import CLIP

__all__ = [
    "OPENAI_CLIP_URLS",
    "BackboneMismatchWarning",
    "ClipCheckpointError",
    "build_clip_from_file",
    "build_clip_from_state_dict",
    "build_open_clip",
    "open_clip_model_config",
    "canonical_clip_name",
    "checkpoint_filename",
    "clip_file_sha256",
    "clip_cache_dir",
    "clip_model_info",
    "describe_clip",
    "format_architecture",
    "load_clip_with_info",
    "matching_clip_name",
    "reference_architecture",
    "set_token_layout",
    "TOKEN_LAYOUTS",
    "expected_sha256",
    "load_clip",
    "read_clip_state_dict",
    "resolve_clip_checkpoint",
    "verify_checkpoint_file",
    "vision_tower_config",
    "write_verified_marker",
]

_BASE = "https://openaipublic.azureedge.net/clip/models"

# OpenAI's released checkpoints (clip/clip.py `_MODELS`); the SHA256 of each file is the 2nd-to-last path component.
OPENAI_CLIP_URLS: dict[str, str] = {
    "RN50": f"{_BASE}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "RN101": f"{_BASE}/8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
    "RN50x4": f"{_BASE}/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt",
    "RN50x16": f"{_BASE}/52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/RN50x16.pt",
    "RN50x64": f"{_BASE}/be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/RN50x64.pt",
    "ViT-B/32": f"{_BASE}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    "ViT-B/16": f"{_BASE}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "ViT-L/14": f"{_BASE}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    "ViT-L/14@336px": f"{_BASE}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
}

DEFAULT_CACHE_DIR = "~/.cache/clip"
# Where the PromptKD repository reads its weights (./clip/ViT-B-16.pt, ./clip/ViT-L-14.pt), searched after the cache
UPSTREAM_CLIP_DIR = "clip"
CACHE_ENV_VAR = "CLIP_CACHE_DIR"
DEFAULT_PATH_KEY = "MODEL.BACKBONE.PATH"
VERIFIED_SUFFIX = ".sha256-ok"

# How the transformer blocks hold their tokens: (tokens, batch, width) as OpenAI's CLIP code and therefore every
# upstream repository does, or open_clip's own (batch, tokens, width). Same function, rows of the matrix products in
# another order: features differ by ~1e-6 at ViT-B/16 size, and on a CPU the student's forward/backward is
# 9-20 % faster tokens-first (benchmarks/README.md, the teacher-bank section).
TOKEN_LAYOUTS = ("tokens_first", "batch_first")

# Extra entries OpenAI's TorchScript archives carry next to the weights; they are not parameters.
_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")


class ClipCheckpointError(UserError, RuntimeError):
    """A CLIP checkpoint is missing, corrupt or not in OpenAI's format; the message says how to fix it."""


class BackboneMismatchWarning(UserWarning):
    """A CLIP file given by path does not have the shapes of the configured backbone name (e.g. a tiny test CLIP)."""


# --------------------------------------------------------------------------------------------------------------
# names, files, cache dir
# --------------------------------------------------------------------------------------------------------------


def canonical_clip_name(name: str) -> str:
    """Accept OpenAI's names (``ViT-B/16``) and their file stems (``ViT-B-16``); anything else is an error."""
    if name in OPENAI_CLIP_URLS:
        return name
    for known, url in OPENAI_CLIP_URLS.items():
        if url.rsplit("/", 1)[-1].removesuffix(".pt") == name:
            return known
    raise ValueError(
        f"unknown CLIP backbone name {name!r}; known names: {', '.join(OPENAI_CLIP_URLS)}. "
        f"To load any other OpenAI-format checkpoint, set {DEFAULT_PATH_KEY} /path/to/file.pt"
    )


def checkpoint_filename(name: str) -> str:
    """OpenAI's file name for a backbone (``"ViT-B/16"`` -> ``"ViT-B-16.pt"``), used in the cache dir."""
    return OPENAI_CLIP_URLS[canonical_clip_name(name)].rsplit("/", 1)[-1]


def expected_sha256(name: str) -> str:
    """The SHA256 of OpenAI's file, taken from its download URL (the 2nd-to-last path component)."""
    return OPENAI_CLIP_URLS[canonical_clip_name(name)].rsplit("/", 2)[-2]


def _name_for_file(path: str | Path) -> str | None:
    """Guess the backbone name from an OpenAI file name, for error messages."""
    file_name = Path(path).name
    for known, url in OPENAI_CLIP_URLS.items():
        if url.endswith("/" + file_name):
            return known
    return None


def clip_cache_dir() -> Path:
    """Where CLIP weights live: ``$CLIP_CACHE_DIR`` if set and non-empty, else ``~/.cache/clip``."""
    env = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(env or DEFAULT_CACHE_DIR).expanduser()


# --------------------------------------------------------------------------------------------------------------
# verification with a sidecar, so a 900 MB file is hashed once
# --------------------------------------------------------------------------------------------------------------


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + VERIFIED_SUFFIX)


def _file_signature(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_verified_marker(path: str | Path, sha256: str) -> None:
    """Record that ``path`` (at its current size and mtime) hashes to ``sha256``; best effort (read-only dirs)."""
    path = Path(path)
    record = {**_file_signature(path), "sha256": sha256.lower()}
    with contextlib.suppress(OSError):
        _marker_path(path).write_text(json.dumps(record) + "\n")


def _marker_says_verified(path: Path, sha256: str) -> bool:
    try:
        record = json.loads(_marker_path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record == {**_file_signature(path), "sha256": sha256.lower()}


def _verify(path: Path, sha256: str, hash_if_needed: bool = True) -> tuple[bool, str | None]:
    """(ok, actual hash or None if not computed); refreshes the marker when the file had to be hashed."""
    if _marker_says_verified(path, sha256):
        return True, sha256.lower()
    if not hash_if_needed:
        return False, None
    actual = sha256_of_file(path)
    if actual == sha256.lower():
        write_verified_marker(path, actual)
        return True, actual
    _marker_path(path).unlink(missing_ok=True)
    return False, actual


def clip_file_sha256(path: str | Path) -> str:
    """The SHA256 of a CLIP file, from its ``.sha256-ok`` sidecar when that is current, else hashed.

    Saved students record the hash of the backbone they were built on; files in the CLIP cache dir have a sidecar
    from their verification, so they are not hashed again. No sidecar is written next to other files (a user's
    folder is left as it is).
    """
    path = Path(path)
    with contextlib.suppress(OSError, ValueError, KeyError):
        record = json.loads(_marker_path(path).read_text())
        if isinstance(record, dict) and {k: record.get(k) for k in ("size", "mtime_ns")} == _file_signature(path):
            return str(record["sha256"])
    return sha256_of_file(path)


def verify_checkpoint_file(path: str | Path, sha256: str, *, hash_if_needed: bool = True) -> bool:
    """True if ``path`` hashes to ``sha256``. A ``<file>.sha256-ok`` sidecar (size + mtime + hash) remembers a
    successful check, so the file is hashed again only if it changed. ``hash_if_needed=False`` only consults the
    sidecar (cheap, for listings)."""
    path = Path(path)
    return path.is_file() and _verify(path, sha256, hash_if_needed)[0]


# --------------------------------------------------------------------------------------------------------------
# resolve
# --------------------------------------------------------------------------------------------------------------


def _fix_lines(name: str, path_key: str, file_name: str) -> str:
    return (
        f"Fix: python tools/download_clip.py {name}\n"
        f"  or set {path_key} /path/to/{file_name} to load a file as given (no hash check)"
    )


def resolve_clip_checkpoint(name: str, path: str = "", *, path_key: str = DEFAULT_PATH_KEY) -> Path:
    """The checkpoint file to load for backbone ``name``.

    A non-empty ``path`` wins and is used as given (it must exist; no hash check: it may be a fine-tuned or tiny
    checkpoint). Otherwise ``<cache dir>/<OpenAI file name>``, which must match the SHA256 in OpenAI's URL.
    ``path_key`` is the config key that set ``path``; it only appears in error messages.
    """
    if path:
        explicit = Path(path).expanduser()
        if explicit.is_dir() and (weights := open_clip_weights_file(explicit)) is not None:
            return weights
        if explicit.is_file():
            return explicit
        guessed = _name_for_file(explicit) or name
        raise ClipCheckpointError(
            f"CLIP checkpoint not found: {explicit}\n"
            f"Searched:\n  - {path_key} (explicit path): {explicit} (missing)\n"
            f"Fix: point {path_key} at an existing file, or unset it and run "
            f"`python tools/download_clip.py {guessed}` to use the CLIP cache dir"
        )

    canonical = canonical_clip_name(name)
    file_name = checkpoint_filename(canonical)
    cache_dir = clip_cache_dir()
    file = cache_dir / file_name
    upstream_file = Path(UPSTREAM_CLIP_DIR) / file_name  # PromptKD's ./clip/ViT-B-16.pt, relative to the run
    if not file.is_file() and upstream_file.is_file():
        file = upstream_file
    if not file.is_file():
        env = os.environ.get(CACHE_ENV_VAR, "").strip()
        default_file = Path(DEFAULT_CACHE_DIR).expanduser() / file_name
        if env:
            env_line = f"${CACHE_ENV_VAR}={env}: {file} (missing)"
            default_line = (
                f"default dir {DEFAULT_CACHE_DIR}: {default_file} (not searched: ${CACHE_ENV_VAR} is set)"
            )
        else:
            env_line = f"${CACHE_ENV_VAR}: not set"
            default_line = f"default dir {DEFAULT_CACHE_DIR}: {file} (missing)"
        raise ClipCheckpointError(
            f"CLIP checkpoint for {canonical} not found: {file_name}\n"
            f"Searched:\n"
            f"  - {path_key} (explicit path): not set\n"
            f"  - {env_line}\n"
            f"  - {default_line}\n"
            f"  - the PromptKD repository's place ./{UPSTREAM_CLIP_DIR}/: {upstream_file.absolute()} (missing)\n"
            + _fix_lines(canonical, path_key, file_name)
        )

    expected = expected_sha256(canonical)
    ok, actual = _verify(file, expected)
    if not ok:
        raise ClipCheckpointError(
            f"CLIP checkpoint {file} failed its SHA256 check (corrupt or incomplete download, or a different file):\n"
            f"  expected {expected}\n  actual   {actual}\n"
            + _fix_lines(canonical, path_key, file_name)
            + "\n  (the download tool replaces the bad file)"
        )
    return file


# --------------------------------------------------------------------------------------------------------------
# read
# --------------------------------------------------------------------------------------------------------------


def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript zips carry compiled ``code/`` and ``constants.pkl``; ``torch.save`` zips only pickled data."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            inner = member.split("/", 1)[-1]
            if inner == "constants.pkl" or inner.startswith("code/"):
                return True
    return False


def _read_error(path: Path, reason: str) -> ClipCheckpointError:
    name = _name_for_file(path) or "<NAME>"
    return ClipCheckpointError(
        f"could not read CLIP checkpoint {path}: {reason}\n"
        f"It may be truncated or corrupt, or not a CLIP checkpoint.\n"
        f"Fix: python tools/download_clip.py {name}  (re-downloads it into the CLIP cache dir)\n"
        f"  or set {DEFAULT_PATH_KEY} /path/to/file.pt to a good copy"
    )


# Keys only the prompt checkpoints of this toolkit and of upstream CoOp/MaPLe/PromptSRC/PromptKD hold.
_PROMPT_KEY_MARKERS = ("prompt_learner.", "image_encoder.VPT", "VPT_shallow", "vision_prompts.", "text_prompts.")


def _prompt_checkpoint_kind(loaded: Any) -> str | None:
    """What a loaded file is if it is a prompt-learning checkpoint rather than CLIP weights, else None."""
    if not isinstance(loaded, Mapping):
        return None
    state = loaded.get("state_dict", loaded)
    keys = [str(k) for k in state] if isinstance(state, Mapping) else []
    if "token_embedding.weight" in keys:  # CLIP weights (possibly wrapped in a Dassl-style dict)
        return None
    prompts = any(marker in key for key in keys for marker in _PROMPT_KEY_MARKERS)
    if "epoch" in loaded and "state_dict" in loaded or prompts:
        meta = loaded.get("meta") if isinstance(loaded.get("meta"), Mapping) else {}
        trainer = f"{meta['trainer']} " if meta.get("trainer") else ""
        epoch = f", epoch {loaded['epoch']}" if "epoch" in loaded else ""
        return f"a {trainer}prompt-learning checkpoint{epoch}"
    return None


def _prompt_checkpoint_error(path: Path, kind: str) -> ClipCheckpointError:
    return ClipCheckpointError(
        f"{path} is {kind}, not CLIP weights: it holds trained prompts, not the backbone.\n"
        "A PromptSRC/PromptKD teacher goes in TRAINER.PROMPTKD.TEACHER_CKPT; a run's checkpoints are loaded with "
        "--model-dir DIR (with --eval-only) or resumed from --output-dir.\n"
        f"Fix: set {DEFAULT_PATH_KEY} (or TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH) to an OpenAI CLIP file, or unset "
        "it and run `python tools/download_clip.py NAME`"
    )


def read_clip_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read OpenAI CLIP weights on CPU from either of OpenAI's formats: a TorchScript archive (the released files)
    or a plain state dict (optionally wrapped as ``{"state_dict": ...}``), loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise _read_error(path, "no such file")
    if open_clip_model_config(path) is not None or path.suffix == ".safetensors":
        return _read_open_clip_weights(path)
    if not _is_torchscript_archive(path):  # TorchScript archives are OpenAI's releases, never our checkpoints
        globals_ = pickled_globals(str(path))
        if any(g.startswith(("torch.optim", "dassl.")) for g in globals_):
            raise _prompt_checkpoint_error(path, "an upstream Dassl training checkpoint (it pickles the optimizer)")
    try:
        if _is_torchscript_archive(path):
            with warnings.catch_warnings():
                # reading OpenAI's released archives is the one thing TorchScript is still needed for
                warnings.filterwarnings(
                    "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning
                )
                loaded: Any = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to parse the file means the same thing to the user
        raise _read_error(path, f"{type(err).__name__}: {err}") from err

    kind = _prompt_checkpoint_kind(loaded)
    if kind is not None:
        raise _prompt_checkpoint_error(path, kind)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not loaded:
        raise _read_error(path, f"expected a dict of tensors, found {type(loaded).__name__}")
    not_tensors = [key for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise _read_error(path, f"expected a dict of tensors; non-tensor entries: {not_tensors[:5]}")
    return {str(key): value.detach() for key, value in loaded.items()}


# --------------------------------------------------------------------------------------------------------------
# open_clip's own layout (the Hugging Face hub's open_clip repositories)
# --------------------------------------------------------------------------------------------------------------

OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def open_clip_weights_file(folder: Path) -> Path | None:
    """The weights file of a folder with ``open_clip_config.json`` (+ ``open_clip_model.safetensors`` or
    ``open_clip_pytorch_model.bin``), or None."""
    if not (folder / OPEN_CLIP_CONFIG).is_file():
        return None
    return next((folder / name for name in OPEN_CLIP_WEIGHTS if (folder / name).is_file()), None)


def open_clip_model_config(weights_file: str | Path) -> dict[str, Any] | None:
    """open_clip's ``model_cfg`` (embed_dim, vision_cfg, text_cfg, quick_gelu, ...) from the ``open_clip_config.json``
    next to ``weights_file``, or None for OpenAI files: the architecture is read from there, not assumed (GELU vs
    QuickGELU and head widths are not visible in the tensors)."""
    config_file = Path(weights_file).with_name(OPEN_CLIP_CONFIG)
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ClipCheckpointError(f"could not read the open_clip config {config_file}: {err}") from err
    model_cfg = config.get("model_cfg", config) if isinstance(config, dict) else None
    if not isinstance(model_cfg, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(model_cfg):
        raise ClipCheckpointError(
            f"{config_file} holds no open_clip model config (expected \"model_cfg\" with embed_dim, vision_cfg, "
            "text_cfg, as open_clip's hub repositories ship it)"
        )
    return model_cfg


def _read_open_clip_weights(path: Path) -> dict[str, torch.Tensor]:
    """An open_clip state dict (safetensors or ``torch.save``; ``module.`` prefixes of DDP training removed)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path))
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to parse the file means the same thing to the user
        raise _read_error(path, f"{type(err).__name__}: {err}") from err
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise _read_error(path, "expected a dict of tensors")
    return {str(k).removeprefix("module."): v.detach() for k, v in loaded.items()}


def build_open_clip(state_dict: Mapping[str, torch.Tensor], model_cfg: Mapping[str, Any], source: str) -> CLIP:
    """An fp32, eval-mode open_clip ``CLIP`` of ``model_cfg`` with ``state_dict`` loaded strictly.

    Only the plain CLIP layout (own text transformer, ViT or ResNet image tower) is accepted: the prompt machinery
    works inside those towers. The image tower's config is kept as ``model.vision_config`` (exports rebuild it).
    """
    from open_clip.model import CLIP

    text_cfg, vision_cfg = dict(model_cfg["text_cfg"]), dict(model_cfg["vision_cfg"])
    if model_cfg.get("custom_text") or text_cfg.get("hf_model_name") or vision_cfg.get("timm_model_name"):
        raise ClipCheckpointError(
            f"{source}: open_clip models with a Hugging Face text tower or a timm image tower are not supported (the "
            "prompts go into CLIP's own transformer blocks); use an open_clip CLIP with its own text transformer"
        )
    keys = ("embed_dim", "quick_gelu", "init_logit_scale", "init_logit_bias", "nonscalar_logit_scale")
    model = CLIP(vision_cfg=vision_cfg, text_cfg=text_cfg, cast_dtype=None,
                 **{k: model_cfg[k] for k in keys if k in model_cfg})  # fmt: skip
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as err:
        raise ClipCheckpointError(f"{source} does not match its open_clip config: {err}") from err
    model.vision_config = {"embed_dim": model_cfg["embed_dim"], "quick_gelu": bool(model_cfg.get("quick_gelu")),
                           **vision_cfg}  # fmt: skip
    return model.float().eval()


# --------------------------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------------------------


def _require(state_dict: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state_dict:
        raise ClipCheckpointError(f"not an OpenAI CLIP state dict: key {key!r} is missing")
    return state_dict[key]


def _heads(width: int, what: str) -> int:
    heads = width // 64  # OpenAI/open_clip infer heads from a head width of 64
    if heads < 1:
        raise ClipCheckpointError(
            f"{what} width {width} is below 64, so CLIP's rule heads = width // 64 gives 0"
        )
    return heads


def clip_model_info(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The architecture a CLIP state dict encodes, read from tensor shapes as OpenAI's ``build_model`` does.

    Keys: ``arch`` ("vit" | "resnet"), ``embed_dim``, ``image_resolution``, ``vision_patch`` (None for ResNets),
    ``grid``, ``vision_width``, ``vision_layers`` (int, or 4-tuple for ResNets), ``vision_heads``, ``text_width``,
    ``text_layers``, ``text_heads``, ``context_length``, ``vocab_size``.
    """
    if "visual.proj" in state_dict:
        conv1 = _require(state_dict, "visual.conv1.weight")  # (width, 3, patch, patch)
        vision_width, vision_patch = conv1.shape[0], conv1.shape[-1]
        vision_layers: int | tuple[int, ...] = sum(
            1 for key in state_dict if key.startswith("visual.") and key.endswith(".attn.in_proj_weight")
        )
        grid = round((_require(state_dict, "visual.positional_embedding").shape[0] - 1) ** 0.5)
        info: dict[str, Any] = {
            "arch": "vit",
            "image_resolution": vision_patch * grid,
            "vision_patch": vision_patch,
            "vision_heads": _heads(vision_width, "vision"),
        }
    else:
        vision_layers = tuple(
            len({key.split(".")[2] for key in state_dict if key.startswith(f"visual.layer{block}.")})
            for block in (1, 2, 3, 4)
        )
        vision_width = _require(state_dict, "visual.layer1.0.conv1.weight").shape[0]
        pos = _require(state_dict, "visual.attnpool.positional_embedding")  # (grid**2 + 1, width * 32)
        grid = round((pos.shape[0] - 1) ** 0.5)
        if grid**2 + 1 != pos.shape[0]:
            raise ClipCheckpointError(
                f"visual.attnpool.positional_embedding has {pos.shape[0]} rows, not grid**2 + 1"
            )
        info = {
            "arch": "resnet",
            "image_resolution": grid * 32,
            "vision_patch": None,
            "vision_heads": _heads(vision_width * 32, "vision"),
        }
    text_width = _require(state_dict, "ln_final.weight").shape[0]
    info.update(
        embed_dim=_require(state_dict, "text_projection").shape[1],
        grid=grid,
        vision_width=vision_width,
        vision_layers=vision_layers,
        text_width=text_width,
        text_layers=len(
            {key.split(".")[2] for key in state_dict if key.startswith("transformer.resblocks.")}
        ),
        text_heads=_heads(text_width, "text"),
        context_length=_require(state_dict, "positional_embedding").shape[0],
        vocab_size=_require(state_dict, "token_embedding.weight").shape[0],
    )
    return info


def build_clip_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> CLIP:
    """An fp32, eval-mode open_clip ``CLIP`` on CPU shaped by the checkpoint itself, with QuickGELU.

    Equivalent to ``open_clip.model.build_model_from_openai_state_dict(sd, quick_gelu=True, cast_dtype=None)``
    except that the weights are copied into fp32 parameters directly (that function first casts the model to
    fp16, which would round fp32 checkpoints) and the caller's dict is left untouched.
    """
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    info = clip_model_info(state_dict)
    vision_cfg = CLIPVisionCfg(
        layers=info["vision_layers"],
        width=info["vision_width"],
        patch_size=info["vision_patch"],
        image_size=info["image_resolution"],
    )
    text_cfg = CLIPTextCfg(
        context_length=info["context_length"],
        vocab_size=info["vocab_size"],
        width=info["text_width"],
        heads=info["text_heads"],
        layers=info["text_layers"],
    )
    model = CLIP(
        info["embed_dim"], vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=True, cast_dtype=None
    )
    weights = {key: value for key, value in state_dict.items() if key not in _NON_WEIGHT_KEYS}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ClipCheckpointError(
            f"checkpoint does not match the CLIP architecture its shapes imply: {err}"
        ) from err
    return model.float().eval()


def set_token_layout(model: torch.nn.Module, layout: str) -> torch.nn.Module:
    """Run every transformer of ``model`` (a CLIP, or one tower) in ``layout`` (``TOKEN_LAYOUTS``); returns it.

    Call it before prompt hooks are attached: they read the layout when they are built.
    """
    if layout not in TOKEN_LAYOUTS:
        raise ConfigError(
            f"MODEL.BACKBONE.TOKEN_LAYOUT must be one of {list(TOKEN_LAYOUTS)}, got '{layout}' "
            "(tokens_first: OpenAI's CLIP layout, the upstream repositories'; batch_first: open_clip's)"
        )
    batch_first = layout == "batch_first"
    for module in model.modules():
        if hasattr(module, "resblocks") and hasattr(module, "batch_first"):
            module.batch_first = batch_first
            for block in module.resblocks:
                block.attn.batch_first = batch_first
    return model


def vision_tower_config(model: torch.nn.Module) -> dict[str, Any]:
    """The image tower's open_clip config (``CLIPVisionCfg`` fields + ``embed_dim``, ``quick_gelu``), so that
    ``trainers.student_model.build_visual`` rebuilds it without the checkpoint it came from (exports)."""
    recorded = getattr(model, "vision_config", None)
    if recorded is not None:
        return dict(recorded)
    info = clip_model_info(model.state_dict())
    if info["arch"] != "vit":
        raise ClipCheckpointError("only vision-transformer image towers can be exported (this one is a ResNet)")
    return {"embed_dim": info["embed_dim"], "quick_gelu": True, "layers": info["vision_layers"],
            "width": info["vision_width"], "head_width": 64, "patch_size": info["vision_patch"],
            "image_size": info["image_resolution"]}  # fmt: skip


def build_clip_from_file(file: str | Path) -> CLIP:
    """The CLIP in ``file`` (OpenAI format, or open_clip's with its ``open_clip_config.json``), fp32, eval, CPU."""
    model_cfg = open_clip_model_config(file)
    state_dict = read_clip_state_dict(file)
    return build_open_clip(state_dict, model_cfg, str(file)) if model_cfg else build_clip_from_state_dict(state_dict)


# open_clip's config name for each OpenAI name: the reference shapes come from open_clip's architecture configs.
_OPEN_CLIP_NAMES = {"ViT-L/14@336px": "ViT-L-14-336"}


def _architecture(info: Mapping[str, Any]) -> dict[str, Any]:
    """The shape facts that identify an architecture, from ``clip_model_info``."""
    layers = info["vision_layers"]
    return {
        "family": info["arch"],
        "width": info["vision_width"],
        "layers": list(layers) if isinstance(layers, (tuple, list)) else layers,
        "patch": info["vision_patch"],
        "resolution": info["image_resolution"],
        "embed_dim": info["embed_dim"],
        "text_width": info["text_width"],
        "text_layers": info["text_layers"],
    }


def reference_architecture(name: str) -> dict[str, Any]:
    """The shapes of OpenAI's checkpoint for ``name`` (ViT-B/16: width 768, 12 layers, patch 16, 224 px, embed 512)."""
    import open_clip

    canonical = canonical_clip_name(name)
    config = open_clip.get_model_config(_OPEN_CLIP_NAMES.get(canonical, canonical.replace("/", "-")))
    vision, text = config["vision_cfg"], config["text_cfg"]
    layers = vision["layers"]
    return {
        "family": "vit" if vision.get("patch_size") else "resnet",
        "width": vision["width"],
        "layers": list(layers) if isinstance(layers, (tuple, list)) else layers,
        "patch": vision.get("patch_size"),
        "resolution": vision["image_size"],
        "embed_dim": config["embed_dim"],
        "text_width": text["width"],
        "text_layers": text["layers"],
    }


def matching_clip_name(architecture: Mapping[str, Any]) -> str | None:
    """The OpenAI backbone whose shapes ``architecture`` has (see ``describe_clip``), or None (e.g. a tiny CLIP)."""
    facts = {k: architecture[k] for k in reference_architecture("ViT-B/16")}
    return next((name for name in OPENAI_CLIP_URLS if reference_architecture(name) == facts), None)


def describe_clip(model: torch.nn.Module) -> dict[str, Any]:
    """The architecture a built CLIP actually has: family (vit/resnet), width, layers, patch, resolution,
    embed_dim, text_width, text_layers, and ``matches``: the OpenAI name with exactly these shapes, or None."""
    architecture = _architecture(clip_model_info(model.state_dict()))
    return {**architecture, "matches": matching_clip_name(architecture)}


def format_architecture(architecture: Mapping[str, Any]) -> str:
    """One line for logs and errors: ``ViT width 768, 12 layers, patch 16, 224 px, embed 512 (= ViT-B/16)``."""
    if architecture["family"] == "vit":
        vision = f"ViT width {architecture['width']}, {architecture['layers']} layers, patch {architecture['patch']}"
    else:
        vision = f"ResNet width {architecture['width']}, blocks {tuple(architecture['layers'])}"
    text = f"{vision}, {architecture['resolution']} px, embed {architecture['embed_dim']}"
    if "matches" in architecture:
        text += f" (= {architecture['matches']})" if architecture["matches"] else " (no OpenAI architecture)"
    return text


def load_clip_with_info(
    name: str,
    path: str = "",
    device: str | torch.device = "cpu",
    *,
    path_key: str = DEFAULT_PATH_KEY,
    token_layout: str | None = None,
) -> tuple[CLIP, dict[str, Any]]:
    """``load_clip`` plus what was loaded: ``describe_clip`` + ``name`` (configured), ``file``, ``source``, and
    ``token_layout`` when one is given (``set_token_layout``; None leaves open_clip's).

    A file found by name in the cache dir must have that architecture's shapes (``ClipCheckpointError`` naming
    both). A file given by ``path`` may be any size (tiny test models), but one whose shapes are not ``name``'s
    gives a warning, and the description records what it really is.
    """
    file = resolve_clip_checkpoint(name, path, path_key=path_key)
    state_dict = read_clip_state_dict(file)
    architecture = _architecture(clip_model_info(state_dict))
    found = {**architecture, "matches": matching_clip_name(architecture)}
    canonical = _canonical_or_none(name)
    if canonical is not None and found["matches"] != canonical:
        expected = {**reference_architecture(canonical), "matches": canonical}
        mismatch = f"expected {format_architecture(expected)}, found {format_architecture(found)}"
        if not path:
            raise ClipCheckpointError(
                f"CLIP checkpoint {file} is in the CLIP cache dir as {canonical} but has other shapes: {mismatch}.\n"
                f"Fix: python tools/download_clip.py {canonical}  (replaces it with OpenAI's file)\n"
                f"  or set {path_key} /path/to/file.pt to load a file of another size on purpose"
            )
        warnings.warn(
            f"{path_key} {file} is not a {canonical} checkpoint ({mismatch}); it is loaded as it is and recorded "
            f"as what it is. Set the backbone name to {found['matches']} if that is what you meant."
            if found["matches"]
            else f"{path_key} {file} is not a {canonical} checkpoint ({mismatch}); it is loaded as it is and "
            "recorded as what it is.",
            BackboneMismatchWarning,
            stacklevel=3,
        )
    model_cfg = open_clip_model_config(file)
    if model_cfg is not None:
        model = build_open_clip(state_dict, model_cfg, str(file))
    else:
        model = build_clip_from_state_dict(state_dict)
    print(f"Loaded CLIP backbone {name} from {file}: {format_architecture(found)}")
    info = {**found, "name": name, "file": str(file), "source": path_key if path else "CLIP cache dir"}
    if token_layout is not None:
        set_token_layout(model, token_layout)
        info["token_layout"] = token_layout
    return model.to(device), info


def _canonical_or_none(name: str) -> str | None:
    try:
        return canonical_clip_name(name)
    except ValueError:
        return None


def load_clip(
    name: str,
    path: str = "",
    device: str | torch.device = "cpu",
    *,
    path_key: str = DEFAULT_PATH_KEY,
    token_layout: str | None = None,
) -> CLIP:
    """Resolve, read and build backbone ``name`` (fp32, eval) on ``device``; prints which file it loaded."""
    return load_clip_with_info(name, path, device, path_key=path_key, token_layout=token_layout)[0]
