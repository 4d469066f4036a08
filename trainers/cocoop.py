"""CoCoOp: "Conditional Prompt Learning for Vision-Language Models" (Zhou et al., CVPR 2022).

One idea: make CoOp's context depend on the image. A small meta-net maps the image feature f to a bias
pi = meta_net(f), added to every context token, so each image gets its own prompts and its own class text features:

    ctx_i = ctx + pi_i,   t_i = norm(text_encoder([SOS][ctx_i][CLASS . EOT]))   for every class,
    logits_i = 100 * f_i @ t_i^T,   loss = CE(logits, y)

The text encoder runs over all classes once per image (B x n_cls text passes per batch, as upstream).
Checkpoint: the prompt learner (``prompt_learner/``), keys ``ctx`` and ``meta_net.{linear1,linear2}.{weight,bias}``
as upstream; trainable tensors are fp32 masters (docs/design.md#precision) where upstream halves them.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .prompting import TextEncoder, TextPromptLearner, freeze_all_but


class CoCoOpPromptLearner(TextPromptLearner):
    """CoOp "end" prompts (CoOp-family init) + the meta-net vis_dim -> vis_dim/16 -> text width."""

    def __init__(self, clip_model: nn.Module, classnames: list[str], n_ctx: int, ctx_init: str) -> None:
        super().__init__(clip_model, classnames, n_ctx=n_ctx, ctx_init=ctx_init, init_family="coop")
        vis_dim = clip_model.visual.output_dim
        ctx_dim = self.ctx.shape[-1]
        # built after ctx, as upstream (same RNG order); default Linear init
        self.meta_net = nn.Sequential(
            OrderedDict(
                [
                    ("linear1", nn.Linear(vis_dim, vis_dim // 16)),
                    ("relu", nn.ReLU(inplace=True)),
                    ("linear2", nn.Linear(vis_dim // 16, ctx_dim)),
                ]
            )
        )

    def conditional_ctx(self, image_features: torch.Tensor) -> torch.Tensor:
        """ctx_i = ctx + meta_net(f_i), one bias shared by the n_ctx tokens: (batch, n_ctx, d)."""
        bias = self.meta_net(image_features)  # (batch, d)
        return self.ctx.unsqueeze(0) + bias.unsqueeze(1)


class CoCoOpCLIP(nn.Module):
    """Frozen CLIP whose class text features are conditioned on each image."""

    def __init__(self, clip_model: nn.Module, classnames: list[str], n_ctx: int, ctx_init: str) -> None:
        super().__init__()
        self.prompt_learner = CoCoOpPromptLearner(clip_model, classnames, n_ctx=n_ctx, ctx_init=ctx_init)
        self.text_encoder = TextEncoder(clip_model)
        self.image_encoder = clip_model.visual
        self.logit_scale = clip_model.logit_scale

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image_features = F.normalize(self.image_encoder(image), dim=-1)  # (batch, d_embed)
        ctx = self.prompt_learner.conditional_ctx(image_features)  # (batch, n_ctx, d)
        tokenized_prompts = self.prompt_learner.tokenized_prompts
        scale = self.logit_scale.exp()
        logits = []
        for ctx_i, f_i in zip(ctx, image_features):
            text_features = self.text_encoder(self.prompt_learner(ctx_i), tokenized_prompts)  # (n_cls, d_embed)
            logits.append(scale * f_i @ F.normalize(text_features, dim=-1).t())  # (n_cls,)
        return torch.stack(logits)  # (batch, n_cls)


@TRAINER_REGISTRY.register()
class CoCoOp(PromptTrainer):
    CONFIG_NODE = "COCOOP"
    MODEL_NAME = "prompt_learner"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        return CfgNode({"N_CTX": 16, "CTX_INIT": "", "PREC": "fp16"})

    def build_model(self) -> None:
        cocoop = self.method_cfg
        clip_model = self.load_backbone()
        model = CoCoOpCLIP(clip_model, self.dm.dataset.classnames, n_ctx=cocoop.N_CTX, ctx_init=cocoop.CTX_INIT)
        freeze_all_but(model, [model.prompt_learner])
        self.register_prompt_model(model, registered=model.prompt_learner)

