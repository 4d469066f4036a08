"""MaPLe: "MaPLe: Multi-modal Prompt Learning" (Khattak et al., CVPR 2023).

One idea: prompt both towers of a frozen CLIP, deep, and *couple* them: the vision prompts of every layer are a
linear function of that layer's text prompts, so the vision branch trains the text prompts too.

    text  layer 0:      [SOS] ctx [phrase rest] {class} . [EOT]     (ctx: n x d_t, IVLP-family init)
    text  layer i:      positions 1..n  <- p_i                      (i = 1..J-1, p_i ~ N(0, 0.02))
    vision layer 0:     [CLS, patches, v_0],   v_0 = proj(ctx)      (proj: Linear(d_t -> d_v))
    vision layer i:     last n tokens   <- v_i, v_i = proj_i(p_i)   (proj_i: Linear(d_t -> d_v), all start equal)
    loss = CE(100 * cos(f_img, f_txt), y)

J = TRAINER.MAPLE.PROMPT_DEPTH >= 1 counts the input layer (J = 1: shallow MaPLe, ctx and proj only). The
prompts are recomputed every forward pass and handed to the shared hooks as {layer: tensor} dicts.

Checkpoint folder ``MultiModalPromptLearner/``. The module names are chosen so that our keys *are* upstream's
(``upstream_key_map`` is the identity): ``MultiModalPromptLearner`` extends the shared ``TextPromptLearner``
(whose context is ``ctx``) and is the model's ``prompt_learner``, giving
``prompt_learner.ctx``, ``prompt_learner.proj.{weight,bias}``, ``prompt_learner.compound_prompts_text.{i-1}``
(= p_i) and ``prompt_learner.compound_prompt_projections.{i-1}.{weight,bias}`` (= proj_i), i = 1..J-1.

Deliberate differences: the widths d_t, d_v are read from the backbone (upstream hard-codes 512 -> 768, i.e.
ViT-B/16 only); trainable tensors are fp32 masters under TRAINER.MAPLE.PREC (upstream keeps ctx and proj in
fp16 and the rest fp32, cast with ``.half()`` where inserted; docs/design.md#precision).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .prompting import TextEncoder, TextPromptHooks, TextPromptLearner, VisionPromptHooks, freeze_all_but


class MultiModalPromptLearner(TextPromptLearner):
    """Text context + deep text prompts + the coupling functions mapping them to the vision prompts."""

    def __init__(
        self, clip_model: nn.Module, classnames: list[str], n_ctx: int, ctx_init: str, depth: int
    ) -> None:
        if depth < 1:
            raise ValueError(f"TRAINER.MAPLE.PROMPT_DEPTH must be >= 1 (1 = shallow MaPLe), got {depth}")
        super().__init__(clip_model, classnames, n_ctx, ctx_init, init_family="ivlp")
        text_width = clip_model.ln_final.weight.shape[0]
        vision_width = clip_model.visual.conv1.weight.shape[0]
        self.proj = nn.Linear(text_width, vision_width)  # layer 0: v_0 = proj(ctx)
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(torch.empty(n_ctx, text_width).normal_(std=0.02)) for _ in range(depth - 1)]
        )
        single_layer = nn.Linear(text_width, vision_width)  # deep copies: every proj_i starts identical
        self.compound_prompt_projections = nn.ModuleList(
            [copy.deepcopy(single_layer) for _ in range(depth - 1)]
        )
        self.depth = depth

    def deep_prompts(self) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """This forward pass's prompts as ({layer: text prompt (n, d_t)}, {layer: vision prompt (n, d_v)})."""
        text = {i: p for i, p in enumerate(self.compound_prompts_text, start=1)}
        pairs = zip(self.compound_prompt_projections, self.compound_prompts_text)
        vision = {0: self.proj(self.ctx)} | {i: proj_i(p_i) for i, (proj_i, p_i) in enumerate(pairs, start=1)}
        return text, vision


class MaPLeCLIP(nn.Module):
    """Frozen CLIP prompted in both towers by a ``MultiModalPromptLearner``."""

    def __init__(
        self, clip_model: nn.Module, classnames: list[str], n_ctx: int, ctx_init: str, depth: int
    ) -> None:
        super().__init__()
        self.prompt_learner = MultiModalPromptLearner(clip_model, classnames, n_ctx, ctx_init, depth)
        self.text_encoder = TextEncoder(clip_model)
        self.image_encoder = clip_model.visual
        self.logit_scale = clip_model.logit_scale
        # plain attributes, not submodules: the hooks live on the backbone's own blocks
        self._text_hooks = TextPromptHooks(clip_model.transformer, depth)
        self._vision_hooks = VisionPromptHooks(clip_model.visual, depth)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.prompt_learner]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        learner = self.prompt_learner
        text_prompts, vision_prompts = learner.deep_prompts()
        with self._text_hooks.prompts(text_prompts):
            text_features = self.text_encoder(learner(), learner.tokenized_prompts)  # (n_cls, d)
        with self._vision_hooks.prompts(vision_prompts):
            image_features = self.image_encoder(image.to(self.image_encoder.conv1.weight.dtype))  # (batch, d)
        image_features = F.normalize(image_features, dim=-1)
        text_features = F.normalize(text_features, dim=-1)
        return self.logit_scale.exp() * image_features @ text_features.t()  # (batch, n_cls)

    def upstream_key_map(self) -> dict[str, str]:
        """{upstream state_dict key: our key} for the trainable tensors: the identity (see module docstring)."""
        return {name: name for name, _ in self.prompt_learner.named_parameters(prefix="prompt_learner")}


@TRAINER_REGISTRY.register()
class MaPLe(PromptTrainer):
    CONFIG_NODE = "MAPLE"
    MODEL_NAME = "MultiModalPromptLearner"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        # PROMPT_DEPTH: max 12, min 1; 1 = shallow MaPLe (J=1)
        return CfgNode({"N_CTX": 2, "CTX_INIT": "a photo of a", "PREC": "fp16", "PROMPT_DEPTH": 9})

    def build_model(self) -> None:
        maple = self.method_cfg
        clip_model = self.load_backbone()
        model = MaPLeCLIP(
            clip_model, self.dm.dataset.classnames, maple.N_CTX, maple.CTX_INIT, maple.PROMPT_DEPTH
        )
        freeze_all_but(model, model.trainable_modules())
        self.register_prompt_model(model)

    def upstream_key_map(self) -> dict[str, str]:
        return self.model.upstream_key_map()
