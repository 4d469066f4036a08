"""VPT-deep on CLIP's vision tower: "Visual Prompt Tuning" (Jia et al., ECCV 2022), as the MaPLe repository
runs it as a baseline.

One idea: learn prompt tokens in the *vision* tower only, appended after [CLS, patches] at the input and
replaced in blocks 1..J-1; the text side is the frozen CLIP's features of "a photo of a {class}." (computed
once, normalised; not trainable, not saved; TRAINER.VPT.CTX_INIT is ignored, as upstream).

    loss = CE(100 * cos(f_img(x; prompts), t_class), y)

Checkpoint folder ``prompt_learner/`` (upstream's, although it holds no prompt learner). Upstream names of the
trainable tensors (``upstream_key_map``): ``image_encoder.VPT`` -> ``vision_prompts.prompts.layer0``,
``image_encoder.transformer.resblocks.{i}.VPT_shallow`` -> ``vision_prompts.prompts.layer{i}``.

Precision as upstream: VPT runs in fp32 whatever TRAINER.VPT.PREC says (upstream's loader returns
``model.float()``; numerics equal up to upstream's fp16 rounding of the inserted prompts).
``TRAINER.VPT.HONOUR_PREC True`` uses PREC like every other trainer (e.g. fp16 storage and autocast).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .prompting import CLASS_PROMPT, DeepPrompts, VisionPromptHooks, class_text_features, freeze_all_but


class VPTCLIP(nn.Module):
    """Frozen CLIP image encoder with deep vision prompts, classified against fixed class text features."""

    def __init__(self, clip_model: nn.Module, text_features: torch.Tensor, n_ctx: int, depth: int) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"TRAINER.VPT.PROMPT_DEPTH_VISION must be >= 1 (1 = shallow VPT), got {depth}")
        width = clip_model.visual.conv1.weight.shape[0]
        self.image_encoder = clip_model.visual
        self.vision_prompts = DeepPrompts(n_ctx, width, depth, first_layer=0)
        self.logit_scale = clip_model.logit_scale
        self.register_buffer("text_features", text_features, persistent=False)  # (n_cls, d), normalised
        self._vision_hooks = VisionPromptHooks(clip_model.visual, depth)  # on the backbone's own blocks
        self.depth = depth

    def trainable_modules(self) -> list[nn.Module]:
        return [self.vision_prompts]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with self._vision_hooks.prompts(self.vision_prompts.as_dict()):
            image_features = self.image_encoder(image.to(self.image_encoder.conv1.weight.dtype))
        image_features = F.normalize(image_features, dim=-1)  # (batch, d)
        return self.logit_scale.exp() * image_features @ self.text_features.t()  # (batch, n_cls)

    def upstream_key_map(self) -> dict[str, str]:
        """{upstream state_dict key: our key} for the trainable tensors."""
        mapping = {}
        for i in range(self.depth):
            upstream = (
                "image_encoder.VPT" if i == 0 else f"image_encoder.transformer.resblocks.{i}.VPT_shallow"
            )
            mapping[upstream] = f"vision_prompts.prompts.layer{i}"
        return mapping


@TRAINER_REGISTRY.register()
class VPT(PromptTrainer):
    CONFIG_NODE = "VPT"
    MODEL_NAME = "prompt_learner"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        return CfgNode(
            {
                "N_CTX_VISION": 2,
                "CTX_INIT": "a photo of a",  # unused upstream
                "PREC": "fp16",
                # Ours: upstream VPT runs in fp32 whatever PREC says (its loader returns model.float()); True honours it
                "HONOUR_PREC": False,
                "PROMPT_DEPTH_VISION": 1,  # 1 = shallow VPT
            }
        )

    @classmethod
    def precision_name(cls, cfg) -> str:
        """fp32 unless HONOUR_PREC (upstream ignores PREC; module docstring)."""
        prec = super().precision_name(cfg)
        return prec if cfg.TRAINER.VPT.HONOUR_PREC else "fp32"

    def build_model(self) -> None:
        vpt = self.method_cfg
        if self.precision.prec != vpt.PREC:
            print(f"VPT runs in fp32 as upstream (TRAINER.VPT.PREC {vpt.PREC} is not used; "
                  "TRAINER.VPT.HONOUR_PREC True uses it)")  # fmt: skip
        classnames = self.dm.dataset.classnames
        clip_model = self.load_backbone().to(self.device)
        print(
            f"Encoding the class prompts '{CLASS_PROMPT}' of {len(classnames)} classes with the frozen CLIP"
        )
        text_features = class_text_features(clip_model, classnames)  # fp32, before any precision cast
        model = VPTCLIP(clip_model, text_features, n_ctx=vpt.N_CTX_VISION, depth=vpt.PROMPT_DEPTH_VISION)
        freeze_all_but(model, model.trainable_modules())
        self.register_prompt_model(model)

    def upstream_key_map(self) -> dict[str, str]:
        return self.model.upstream_key_map()
