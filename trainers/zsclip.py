"""Zero-shot CLIP (Radford et al., 2021): classify with the text features of one hand-crafted prompt per class.

Nothing is trained; run it with ``--eval-only`` (``scripts/zsclip/zeroshot.sh``). ``ZeroshotCLIP2`` (CoOp's
prompt-ensemble variant, ``python train.py --trainer ZeroshotCLIP2 --eval-only ...``) averages the normalised
features of ``IMAGENET_TEMPLATES_SELECT`` plus the dataset's own template (``trainers/templates.py``).
"""

from __future__ import annotations

import torch

from dassl.engine import TRAINER_REGISTRY, TrainerX

from .backbone import load_clip_with_info
from .prompting import class_text_features
from .templates import CUSTOM_TEMPLATES, IMAGENET_TEMPLATES_SELECT, custom_template


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(TrainerX):
    """Frozen CLIP with the dataset's hand-crafted template (``trainers/templates.py``)."""

    def templates(self) -> list[str]:
        return [custom_template(self.cfg.DATASET.NAME)]

    def build_model(self) -> None:
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
        clip_model, backbone = load_clip_with_info(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.PATH, device=self.device,
                                                   token_layout=cfg.MODEL.BACKBONE.TOKEN_LAYOUT)  # fmt: skip
        self.loaded_backbones = {"MODEL.BACKBONE.PATH": backbone}  # recorded in results.json
        if self.device.type == "cuda":
            clip_model.half()  # upstream evaluates the frozen CLIP in fp16 on GPU
        templates = self.templates()
        print(f"Prompt templates: {templates}")
        self.text_features = class_text_features(clip_model, classnames, templates)  # (n_cls, d), normalised
        self.clip_model = clip_model

    @torch.no_grad()
    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        dtype = self.clip_model.visual.conv1.weight.dtype
        image_features = self.clip_model.encode_image(image.to(dtype))
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        logit_scale = self.clip_model.logit_scale.exp()
        return (logit_scale * image_features @ self.text_features.t()).float()  # (batch, n_cls)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensembling: IMAGENET_TEMPLATES_SELECT, plus the dataset's own template for non-ImageNet datasets."""

    def templates(self) -> list[str]:
        templates = list(IMAGENET_TEMPLATES_SELECT)
        name = self.cfg.DATASET.NAME
        if name != "ImageNet" and name in CUSTOM_TEMPLATES:
            templates.append(CUSTOM_TEMPLATES[name])
        return templates
