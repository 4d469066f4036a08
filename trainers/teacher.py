"""The frozen PromptKD teacher: read a PromptSRC checkpoint (ours or upstream's), rebuild the prompted ViT-L/14,
and compute its class vectors once.

Upstream hard-codes the teacher design (IVLP 9/9, 4+4 ctx) and loads with ``strict=False``, so a checkpoint with
fewer prompt layers silently leaves layers random. Here the design is read from the checkpoint itself and a gap
in its prompt layers is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.utils import load_checkpoint
from dassl.utils.download import sha256_of_file
from dassl.utils.errors import UserError
from dassl.utils.torchtools import atomic_torch_save

from .prompt_models import IVLPCLIP, IVLPDesign

_UPSTREAM_VISION = re.compile(r"^image_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$")
_UPSTREAM_TEXT = re.compile(r"^text_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$")
_OURS_VISION = re.compile(r"^vision_prompts\.prompts\.layer(\d+)$")
_OURS_TEXT = re.compile(r"^text_prompts\.prompts\.layer(\d+)$")


class TeacherCheckpointError(UserError, ValueError):
    """A teacher checkpoint that cannot be used as it is; the message says why and what to do."""


def resolve_teacher_checkpoint(path: str) -> str:
    """A teacher checkpoint file from a file or folder path.

    In a folder (or next to a missing ``model-best.pth.tar``), take ``model-best.pth.tar`` if present, else the
    highest ``model.pth.tar-N``: a PromptSRC run writes only ``model.pth.tar-20``, which upstream makes users rename.
    """
    if os.path.isfile(path):
        return path
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    if folder and os.path.isdir(folder):
        if os.path.isfile(os.path.join(folder, "model-best.pth.tar")):
            return os.path.join(folder, "model-best.pth.tar")
        numbered = sorted(
            (int(m.group(1)), name) for name in os.listdir(folder) if (m := re.fullmatch(r"model\.pth\.tar-(\d+)", name))
        )
        if numbered:
            chosen = os.path.join(folder, numbered[-1][1])
            print(f"Teacher checkpoint: using {chosen}")
            return chosen
    raise TeacherCheckpointError(
        f"Teacher checkpoint not found: {path} (looked for the file, then for model-best.pth.tar or model.pth.tar-N "
        f"in {folder or '.'}). Train one with scripts/promptsrc/base2new_train_teacher.sh <dataset>, or set "
        "TRAINER.PROMPTKD.TEACHER_CKPT to a PromptSRC checkpoint (ours or upstream's)."
    )


def teacher_record(checkpoint: str) -> dict | None:
    """What the teacher's own run recorded (``results.json`` next to its checkpoint folder), if it is there.

    A weak teacher makes a weak student (upstream issue #40), so the student prints this before distilling and
    keeps it in its results. Upstream teachers have no results.json: None.
    """
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
    path = os.path.join(run_dir, "results.json")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        final = data["final"]
        return {
            "results": path, "dataset": data.get("dataset"), "classes": data.get("subsample_classes"),
            "num_shots": data.get("num_shots"), "accuracy": final["accuracy"], "epoch": final.get("epoch"),
        }  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_teacher_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The prompt tensors of a teacher checkpoint (a Dassl dict or a bare state dict), as float32."""
    path = resolve_teacher_checkpoint(str(path))
    checkpoint = load_checkpoint(path, map_location="cpu")
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise TeacherCheckpointError(f"{path} holds no state dict")
    prompt_keys = [
        k
        for k in state
        if k == "prompt_learner.ctx"
        or k == "image_encoder.VPT"
        or _UPSTREAM_VISION.match(k)
        or _UPSTREAM_TEXT.match(k)
        or _OURS_VISION.match(k)
        or _OURS_TEXT.match(k)
    ]
    return {k: state[k].float() for k in prompt_keys}


def teacher_design(state: dict[str, torch.Tensor], source: str = "teacher checkpoint") -> dict[str, int]:
    """n_ctx and prompt depths of an IVLP checkpoint, read from its keys (upstream or our names)."""
    if "prompt_learner.ctx" not in state:
        raise TeacherCheckpointError(f"{source}: no prompt_learner.ctx; is this a PromptSRC/IVLP checkpoint?")
    upstream = "image_encoder.VPT" in state or any(_UPSTREAM_TEXT.match(k) for k in state)
    vision_re, text_re = (_UPSTREAM_VISION, _UPSTREAM_TEXT) if upstream else (_OURS_VISION, _OURS_TEXT)
    vision_layers = sorted(int(m.group(1)) for k in state if (m := vision_re.match(k)))
    text_layers = sorted(int(m.group(1)) for k in state if (m := text_re.match(k)))
    has_input = ("image_encoder.VPT" in state) if upstream else (0 in vision_layers)
    deep_vision = [i for i in vision_layers if i > 0]
    depth_vision = (1 + max(deep_vision, default=0)) if has_input else 0
    depth_text = 1 + max(text_layers, default=0)
    missing = [i for i in range(1, depth_vision) if i not in deep_vision] + [
        i for i in range(1, depth_text) if i not in text_layers
    ]
    missing_keys = [
        (f"image_encoder.transformer.resblocks.{i}.VPT_shallow" if upstream else f"vision_prompts.prompts.layer{i}")
        for i in range(1, depth_vision)
        if i not in deep_vision
    ] + [
        (f"text_encoder.transformer.resblocks.{i}.VPT_shallow" if upstream else f"text_prompts.prompts.layer{i}")
        for i in range(1, depth_text)
        if i not in text_layers
    ]
    if missing:
        raise TeacherCheckpointError(
            f"{source}: prompt layers {missing} are missing (depths {depth_vision}/{depth_text}): "
            f"no tensor {', '.join(missing_keys)}. The checkpoint is incomplete; re-export or re-train it."
        )
    first_vision = state["image_encoder.VPT"] if upstream and has_input else state.get("vision_prompts.prompts.layer0")
    return {
        "n_ctx_text": state["prompt_learner.ctx"].shape[-2],
        "n_ctx_vision": first_vision.shape[0] if first_vision is not None else 0,
        "depth_text": depth_text,
        "depth_vision": depth_vision,
        "upstream_names": int(upstream),
    }


class FrozenTeacher(nn.Module):
    """A prompted CLIP that never leaves eval mode and never has gradients."""

    def __init__(self, model: IVLPCLIP) -> None:
        super().__init__()
        self.model = model
        for p in self.model.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:  # noqa: ARG002 - the teacher stays in eval mode
        return super().train(False)

    @torch.no_grad()
    def class_vectors(self) -> torch.Tensor:
        """W: the teacher's prompted text features of every class, L2-normalised (n_cls, d)."""
        return F.normalize(self.model.encode_text(), dim=-1).float()

    @torch.no_grad()
    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(image), dim=-1).float()

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().float()


def build_teacher(clip_model: nn.Module, classnames: list[str], state: dict[str, torch.Tensor], ctx_init: str) -> FrozenTeacher:
    """The IVLP teacher with the checkpoint's design and prompts, for ``classnames``."""
    design = teacher_design(state)
    shape = IVLPDesign(design["n_ctx_text"], design["n_ctx_vision"], design["depth_text"], design["depth_vision"], ctx_init)
    model = IVLPCLIP(clip_model, classnames, shape)
    mapping = model.upstream_key_map() if design["upstream_names"] else {k: k for k in model.upstream_key_map().values()}
    params = dict(model.named_parameters())
    with torch.no_grad():
        for source, target in mapping.items():
            if tuple(state[source].shape) != tuple(params[target].shape):
                raise TeacherCheckpointError(
                    f"teacher tensor {source} has shape {tuple(state[source].shape)}, the "
                    f"backbone expects {tuple(params[target].shape)}; is TEACHER_NAME the backbone it was trained on?"
                )
            params[target].copy_(state[source])
    print(
        f"Teacher: IVLP with {design['n_ctx_text']}+{design['n_ctx_vision']} ctx, prompt depth "
        f"{design['depth_text']} (text) / {design['depth_vision']} (vision), {len(classnames)} classes"
    )
    return FrozenTeacher(model)


def class_vector_cache_key(
    checkpoint: str,
    classnames: list[str],
    backbone: str,
    ctx_init: str,
    *,
    backbone_file: str | os.PathLike,
    precision: str,
    device: str,
    token_layout: str,
) -> str:
    """Hash of everything the class vectors depend on: the teacher's prompt checkpoint and CLIP weights (file
    contents), the class names, the backbone name, the prompt text, the precision, the device type and the token
    layout (``trainers/backbone.py`` TOKEN_LAYOUTS: the two differ by ~1e-6)."""
    digest = hashlib.sha256(sha256_of_file(checkpoint).encode("ascii"))
    digest.update(sha256_of_file(backbone_file).encode("ascii"))
    digest.update("\n".join(classnames).encode("utf-8"))
    digest.update(f"\n{backbone}\n{ctx_init}\n{precision}\n{device}\n{token_layout}".encode())
    return digest.hexdigest()[:24]


def teacher_classnames(checkpoint: str) -> list[str] | None:
    """The class names a teacher of ours was trained on (checkpoint metadata); None for upstream files."""
    meta = load_checkpoint(checkpoint, map_location="cpu").get("meta")
    names = meta.get("classnames") if isinstance(meta, dict) else None
    return list(names) if isinstance(names, (list, tuple)) else None


def cached_class_vectors(teacher: FrozenTeacher | None, cache_dir: str | os.PathLike, key: str) -> torch.Tensor | None:
    """Class vectors from ``cache_dir/class_vectors-<key>.pt`` if present, else computed with ``teacher`` and stored
    there (``teacher=None``: only look, return None on a miss)."""
    path = Path(cache_dir).expanduser() / f"class_vectors-{key}.pt"
    if path.is_file():
        print(f"Loading the teacher's class vectors from {path}")
        return torch.load(path, map_location="cpu", weights_only=True)["class_vectors"]
    if teacher is None:
        return None
    vectors = teacher.class_vectors()
    # a unique temp file: runs started together (seeds, torchrun processes) may all write the same entry
    atomic_torch_save({"class_vectors": vectors.cpu()}, str(path))
    print(f"Saved the teacher's class vectors to {path}")
    return vectors


def encode_classnames(teacher: dict, classnames: list[str], device: str = "cpu") -> torch.Tensor:
    """Class vectors of new ``classnames`` from a student's recorded teacher (``checkpoint``, ``name``,
    ``backbone_path``, ``ctx_init``): what re-targeting a student needs, and the only time it needs the teacher."""
    from .backbone import ClipCheckpointError, load_clip

    layout = teacher.get("token_layout", "batch_first")  # records before the switch ran open_clip's layout
    if teacher.get("kind") == "plain":
        clip_model = load_clip(teacher["name"], teacher.get("backbone_path", ""), device, path_key="--teacher-backbone",
                               token_layout=layout)  # fmt: skip
        return PlainTeacher(clip_model, classnames, teacher["templates"]).class_vectors()
    try:
        state = read_teacher_state(teacher["checkpoint"])
        clip_model = load_clip(teacher["name"], teacher.get("backbone_path", ""), device,
                               path_key="--teacher-backbone", token_layout=layout)  # fmt: skip
    except (TeacherCheckpointError, ClipCheckpointError) as err:
        raise TeacherCheckpointError(
            f"Encoding new class names needs the student's teacher (its text side), which is not available: {err}\n"
            "The student records where its teacher was; if it moved, pass --teacher-ckpt FILE (the PromptSRC "
            "checkpoint) and --teacher-backbone FILE (its CLIP weights)."
        ) from err
    return build_teacher(clip_model, classnames, state, teacher.get("ctx_init", "a photo of a")).to(device).class_vectors()


# ------------------------------------------------------------------------------------------------------------
# a plain, unprompted CLIP as the teacher (TRAINER.PROMPTKD.TEACHER_KIND plain)

TEACHER_KINDS = ("promptsrc", "plain")


def teacher_templates(choice: str, dataset_name: str) -> list[str]:
    """The prompt templates a plain teacher averages (``TRAINER.PROMPTKD.TEACHER_TEMPLATES``): ``imagenet80``
    (OpenAI's 80), ``imagenet60`` (PromptSRC's 60), ``select`` (ZeroshotCLIP2's 7 + the dataset's own template),
    ``custom`` (the dataset's own template only)."""
    from .templates import (
        IMAGENET_TEMPLATES_60,
        IMAGENET_TEMPLATES_80,
        IMAGENET_TEMPLATES_SELECT,
        custom_template,
    )

    choices = {
        "imagenet80": IMAGENET_TEMPLATES_80,
        "imagenet60": IMAGENET_TEMPLATES_60,
        "select": [*IMAGENET_TEMPLATES_SELECT, custom_template(dataset_name)],
        "custom": [custom_template(dataset_name)],
    }
    if choice not in choices:
        raise TeacherCheckpointError(
            f"TRAINER.PROMPTKD.TEACHER_TEMPLATES must be one of {sorted(choices)}, got {choice!r}"
        )
    return list(dict.fromkeys(choices[choice]))


class PlainTeacher(nn.Module):
    """An unprompted CLIP as the teacher: class vectors from a template ensemble (the mean of the L2-normalised
    text features of every template, normalised again, as zero-shot CLIP's ensembles), image features of the
    frozen image tower. Same interface as ``FrozenTeacher``; never leaves eval mode."""

    def __init__(self, clip_model: nn.Module, classnames: list[str], templates: list[str]) -> None:
        super().__init__()
        self.model = clip_model
        self.classnames, self.templates = list(classnames), list(templates)
        for p in self.model.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> PlainTeacher:  # noqa: ARG002 - the teacher stays in eval mode
        return super().train(False)

    @torch.no_grad()
    def class_vectors(self) -> torch.Tensor:
        """(n_cls, d): per class, the normalised mean over templates of normalised text features."""
        from .prompting import tokenize

        device = self.model.logit_scale.device
        context = self.model.positional_embedding.shape[0]
        vectors = []
        for name in self.classnames:
            texts = [t.format(name.replace("_", " ")) for t in self.templates]
            features = F.normalize(self.model.encode_text(tokenize(texts, context).to(device)).float(), dim=-1)
            vectors.append(F.normalize(features.mean(dim=0), dim=-1))
        return torch.stack(vectors)

    @torch.no_grad()
    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(image.to(self.model.visual.conv1.weight.dtype)), dim=-1).float()

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().float()


def plain_cache_key(backbone_file: str | os.PathLike, classnames: list[str], templates: list[str], *,
                    precision: str, device: str, token_layout: str) -> str:  # fmt: skip
    """Cache key of a plain teacher's class vectors: CLIP weights, class names, templates, precision, device,
    token layout."""
    digest = hashlib.sha256(b"plain\n" + sha256_of_file(backbone_file).encode("ascii"))
    digest.update("\n".join(classnames).encode("utf-8") + b"\n--\n" + "\n".join(templates).encode("utf-8"))
    digest.update(f"\n{precision}\n{device}\n{token_layout}".encode())
    return digest.hexdigest()[:24]
