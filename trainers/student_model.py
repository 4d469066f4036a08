"""The distilled PromptKD student as a stand-alone image classifier: torch + open_clip (+ safetensors) only.

This file imports nothing from the toolkit (no ``dassl``, no ``trainers``), so it can travel: the exporter
(``tools/export_student.py``) copies it next to the weights as ``promptkd_student.py``, and

    import sys; sys.path.insert(0, "my_student")
    from promptkd_student import from_pretrained
    model = from_pretrained("my_student")              # config.json + model.safetensors
    logits = model(model.preprocess(pil_image)[None])  # (1, n_classes)

works wherever torch and open_clip are installed. The model is the student of the paper at inference time:
CLIP's image tower with deep visual prompts -> projector -> L2 norm -> ``exp(logit_scale) * f @ W.T`` with the
teacher's class vectors ``W`` (no text tower). The prompt insertion repeats the toolkit's rule
(``trainers/prompting.py``: layer-0 prompts appended after the positional embedding, block i replaces the last
n_ctx tokens), through forward hooks on open_clip's own blocks, so the logits equal the trainer's.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "promptkd-student"
FORMAT_VERSION = 1


def build_projector(in_dim: int, out_dim: int, layers: int) -> nn.Sequential:
    """The student's projector (``TRAINER.PROMPTKD.PROJECT_LAYER``): 1 = Linear; 2 = Linear-BN-ReLU-Linear
    (upstream's); 3 = two Linear-BN-ReLU blocks + Linear."""
    if layers not in (1, 2, 3):
        raise ValueError(f"TRAINER.PROMPTKD.PROJECT_LAYER must be 1, 2 or 3, got {layers}")
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]
        dim = out_dim
    modules.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*modules)


class StudentClassifier(nn.Module):
    """image (batch, 3, H, W), normalised -> logits (batch, n_classes).

    ``visual``: an open_clip ``VisionTransformer``; ``prompts.layer{i}`` (n_ctx, width) for i < depth;
    ``class_vectors`` (n_classes, out_dim), L2-normalised; ``logit_scale``: the log of the scale, as CLIP keeps it.
    """

    def __init__(
        self, visual: nn.Module, n_ctx: int, depth: int, project_layers: int, class_vectors: torch.Tensor,
        logit_scale: torch.Tensor, classnames: list[str], preprocess: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        width = visual.conv1.weight.shape[0]
        blocks = visual.transformer.resblocks
        if depth > len(blocks):
            raise ValueError(f"prompt depth {depth} exceeds the {len(blocks)} blocks of the image tower")
        if len(classnames) != class_vectors.shape[0]:
            raise ValueError(f"{len(classnames)} class names for {class_vectors.shape[0]} class vectors")
        self.visual = visual
        self.prompts = nn.ParameterDict({f"layer{i}": nn.Parameter(torch.zeros(n_ctx, width)) for i in range(depth)})
        self.projector = build_projector(visual.proj.shape[1], class_vectors.shape[1], project_layers)
        self.register_buffer("class_vectors", class_vectors.detach().float().clone())
        self.register_buffer("logit_scale", logit_scale.detach().float().reshape(()).clone())
        self.classnames = list(classnames)
        self.n_ctx, self.depth, self.project_layers = n_ctx, depth, project_layers
        self.preprocess_config = dict(preprocess or {})
        self._batch_first = getattr(visual.transformer, "batch_first", True)
        self._active = False
        if depth >= 1:
            visual.patch_dropout.register_forward_hook(self._append_input_prompts)
        for i in range(1, depth):
            blocks[i].register_forward_pre_hook(self._replace_hook(i), with_kwargs=True)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def _append_input_prompts(self, module, args, output):
        if not self._active:
            return output
        prompt = self.prompts["layer0"].to(output.dtype).unsqueeze(0).expand(output.shape[0], -1, -1)
        return torch.cat([output, prompt], dim=1)  # (B, 1 + grid^2 + n_ctx, width)

    def _replace_hook(self, layer: int):
        def hook(module, args, kwargs):
            if not self._active:
                return None
            x = args[0]
            batch = x.shape[0] if self._batch_first else x.shape[1]
            prompt = self.prompts[f"layer{layer}"].to(x.dtype).unsqueeze(0).expand(batch, -1, -1)
            if self._batch_first:
                x = torch.cat([x[:, : -self.n_ctx], prompt], dim=1)
            else:
                x = torch.cat([x[: -self.n_ctx], prompt.transpose(0, 1)], dim=0)
            return (x, *args[1:]), kwargs

        return hook

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Projected, L2-normalised student features (batch, out_dim)."""
        self._active = True
        try:
            visual = self.visual(image.to(self.visual.conv1.weight.dtype))
        finally:
            self._active = False
        return F.normalize(self.projector(visual.float()), dim=-1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logit_scale.exp() * self.features(image) @ self.class_vectors.t()  # (batch, n_classes)

    def with_classes(self, classnames: list[str], class_vectors: torch.Tensor) -> StudentClassifier:
        """The same student classifying other classes (class vectors from its teacher's text side)."""
        self.class_vectors = F.normalize(class_vectors.detach().float(), dim=-1).to(self.class_vectors.device)
        self.classnames = list(classnames)
        return self

    def preprocess(self, image) -> torch.Tensor:
        """A PIL image -> the normalised tensor (3, H, W) the student was evaluated on."""
        return build_preprocess(self.preprocess_config)(image)


def build_preprocess(config: dict[str, Any]):
    """The evaluation transform: resize the short side to max(resolution), centre crop, to tensor, normalise."""
    from torchvision import transforms as T

    modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
             "nearest": T.InterpolationMode.NEAREST}  # fmt: skip
    size = tuple(config.get("resolution", (224, 224)))
    steps = [T.Resize(max(size), interpolation=modes[config.get("interpolation", "bicubic")]), T.CenterCrop(size),
             T.ToTensor()]  # fmt: skip
    if config.get("normalize", True):
        steps.append(T.Normalize(mean=config["mean"], std=config["std"]))
    return T.Compose(steps)


def build_visual(vision: dict[str, Any], token_layout: str = "batch_first") -> nn.Module:
    """An open_clip image tower from its config (``embed_dim``, ``quick_gelu`` and ``CLIPVisionCfg`` fields), its
    blocks in ``token_layout``: ``tokens_first`` (OpenAI's, the toolkit's default) or ``batch_first`` (open_clip's).
    The layout is the one the student was trained in, so the exported logits are the trainer's to float rounding."""
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    if token_layout not in ("tokens_first", "batch_first"):
        raise ValueError(f"token_layout must be tokens_first or batch_first, got {token_layout!r}")
    vision = dict(vision)
    embed_dim, quick_gelu = vision.pop("embed_dim"), vision.pop("quick_gelu", True)
    visual = _build_vision_tower(embed_dim, CLIPVisionCfg(**vision), quick_gelu=quick_gelu, cast_dtype=None)
    visual.transformer.batch_first = token_layout == "batch_first"
    for block in visual.transformer.resblocks:
        block.attn.batch_first = visual.transformer.batch_first
    return visual


def _atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_pretrained(model: StudentClassifier, folder: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Write ``config.json`` (``config`` + the model's design, classes and preprocessing) and ``model.safetensors``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    full = {
        **config, "format": FORMAT, "format_version": FORMAT_VERSION, "classnames": model.classnames,
        "design": {"n_ctx": model.n_ctx, "depth": model.depth, "project_layers": model.project_layers,
                   "out_dim": int(model.class_vectors.shape[1]),
                   "token_layout": "batch_first" if model._batch_first else "tokens_first"},
        "preprocess": model.preprocess_config,
    }  # fmt: skip
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT}))
    _atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(full, indent=2) + "\n"))
    return folder


def from_pretrained(folder: str | os.PathLike, device: str | torch.device = "cpu") -> StudentClassifier:
    """The student saved by ``save_pretrained`` (``tools/export_student.py``) in ``folder``, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for file in (config_file, weights_file):
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing: an exported student folder holds {CONFIG_NAME} and "
                                    f"{WEIGHTS_NAME} (python tools/export_student.py RUN_DIR --out FOLDER)")  # fmt: skip
    config = json.loads(config_file.read_text())
    if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{config_file} is not a {FORMAT} config of version <= {FORMAT_VERSION}")
    tensors = load_file(str(weights_file))
    design = config["design"]
    visual = build_visual(config["vision"], design.get("token_layout", "batch_first"))  # older exports: open_clip's
    model = StudentClassifier(
        visual, design["n_ctx"], design["depth"], design["project_layers"], tensors["class_vectors"],
        tensors["logit_scale"], config["classnames"], config["preprocess"],
    )  # fmt: skip
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()


__all__ = ["StudentClassifier", "build_preprocess", "build_projector", "build_visual", "from_pretrained",
           "save_pretrained"]  # fmt: skip
