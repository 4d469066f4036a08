"""Prompted CLIP models and config nodes shared by several methods (a method file never imports another one).

* ``IVLPDesign`` + ``IVLPCLIP``: independent deep prompts in both towers (IVLP; the PromptSRC model; the PromptKD
  teacher), built from the shared machinery in ``prompting.py`` on an unmodified open_clip CLIP. The design is
  spelled out once, in ``IVLPDesign``: from a config node (``from_node``) or from a checkpoint (``teacher.py``).
* ``CoOpCLIP`` + ``coop_node_defaults``: CoOp's learned-context model and its ``TRAINER.COOP`` keys, which CoOp,
  KgCoOp, ProGrad and CLIP-Adapter share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from .prompting import DeepPrompts, TextEncoder, TextPromptHooks, TextPromptLearner, VisionPromptHooks


def coop_node_defaults() -> CfgNode:
    """``TRAINER.COOP`` as upstream CoOp declares it (KgCoOp adds its own keys to the same node)."""
    return CfgNode(
        {
            "N_CTX": 16,  # number of context vectors
            "CSC": False,  # class-specific context
            "CTX_INIT": "",  # initialization words
            "PREC": "fp16",  # fp16, fp32, bf16, amp
            "CLASS_TOKEN_POSITION": "end",  # 'middle' or 'end' or 'front'
        }
    )


class CoOpCLIP(nn.Module):
    """Frozen CLIP whose class text features come from learned context + class-name tokens (CoOp, ProGrad,
    KgCoOp)."""

    def __init__(
        self,
        clip_model: nn.Module,
        classnames: list[str],
        n_ctx: int,
        ctx_init: str = "",
        csc: bool = False,
        class_token_position: str = "end",
    ) -> None:
        super().__init__()
        self.prompt_learner = TextPromptLearner(
            clip_model,
            classnames,
            n_ctx=n_ctx,
            ctx_init=ctx_init,
            init_family="coop",
            csc=csc,
            class_token_position=class_token_position,
        )
        self.text_encoder = TextEncoder(clip_model)
        self.image_encoder = clip_model.visual
        self.logit_scale = clip_model.logit_scale

    def text_features(self) -> torch.Tensor:
        features = self.text_encoder(self.prompt_learner(), self.prompt_learner.tokenized_prompts)
        return F.normalize(features, dim=-1)  # (n_cls, d)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image_features = F.normalize(self.image_encoder(image), dim=-1)  # (batch, d)
        return self.logit_scale.exp() * image_features @ self.text_features().t()  # (batch, n_cls)


@dataclass(frozen=True)
class IVLPDesign:
    """The shape of an IVLP prompt set: context lengths and prompt depths of both towers, and the prompt text."""

    n_ctx_text: int
    n_ctx_vision: int
    depth_text: int
    depth_vision: int
    ctx_init: str = "a photo of a"

    @classmethod
    def from_node(cls, node: CfgNode) -> IVLPDesign:
        """From a method node with IVLP's keys (``TRAINER.IVLP``, ``TRAINER.PROMPTSRC``)."""
        return cls(node.N_CTX_TEXT, node.N_CTX_VISION, node.PROMPT_DEPTH_TEXT, node.PROMPT_DEPTH_VISION, node.CTX_INIT)


class IVLPCLIP(nn.Module):
    """CLIP with learnable text context + deep text prompts and deep vision prompts (not coupled).

    Trainable: ``prompt_learner.ctx``, ``text_prompts.prompts.layer{1..Jt-1}``, ``vision_prompts.prompts.layer{0..Jv-1}``.
    ``upstream_key_map`` gives the upstream names of these tensors (checkpoint import/export).
    """

    def __init__(self, clip_model: nn.Module, classnames: list[str], design: IVLPDesign, text_chunk: int = 0) -> None:
        super().__init__()
        n_ctx_text, n_ctx_vision, ctx_init = design.n_ctx_text, design.n_ctx_vision, design.ctx_init
        depth_text, depth_vision = design.depth_text, design.depth_vision
        if depth_text < 1:
            raise ValueError("PROMPT_DEPTH_TEXT must be >= 1 (layer 0 is the learnable context)")
        text_width = clip_model.ln_final.weight.shape[0]
        vision_width = clip_model.visual.conv1.weight.shape[0]
        self.prompt_learner = TextPromptLearner(clip_model, classnames, n_ctx_text, ctx_init, init_family="ivlp")
        self.text_prompts = DeepPrompts(n_ctx_text, text_width, depth_text, first_layer=1)
        self.vision_prompts = DeepPrompts(n_ctx_vision, vision_width, depth_vision, first_layer=0)
        self.text_encoder = TextEncoder(clip_model, chunk_size=text_chunk)
        self.image_encoder = clip_model.visual
        self.logit_scale = clip_model.logit_scale
        # plain attributes, not submodules: the hooks live on the backbone's own blocks
        self._text_hooks = TextPromptHooks(clip_model.transformer, depth_text)
        self._vision_hooks = VisionPromptHooks(clip_model.visual, depth_vision)
        self.design = design
        self.depth_text, self.depth_vision = depth_text, depth_vision

    def trainable_modules(self) -> list[nn.Module]:
        return [self.prompt_learner, self.text_prompts, self.vision_prompts]

    def encode_text(self) -> torch.Tensor:
        """Prompted text features of all classes (n_cls, d), not normalised."""
        with self._text_hooks.prompts(self.text_prompts.as_dict()):
            return self.text_encoder(self.prompt_learner(), self.prompt_learner.tokenized_prompts)

    def encode_image(self, image: torch.Tensor, prompts: bool = True) -> torch.Tensor:
        """Image features (batch, d), not normalised; ``prompts=False`` runs the frozen backbone alone."""
        with self._vision_hooks.prompts(self.vision_prompts.as_dict() if prompts else None):
            return self.image_encoder(image.to(self.image_encoder.conv1.weight.dtype))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image_features = F.normalize(self.encode_image(image), dim=-1)
        text_features = F.normalize(self.encode_text(), dim=-1)
        return self.logit_scale.exp() * image_features @ text_features.t()  # (batch, n_cls)

    def upstream_key_map(self) -> dict[str, str]:
        """{upstream state_dict key: our key} for the trainable tensors."""
        mapping = {"prompt_learner.ctx": "prompt_learner.ctx"}
        for i in range(self.depth_vision):
            upstream = "image_encoder.VPT" if i == 0 else f"image_encoder.transformer.resblocks.{i}.VPT_shallow"
            mapping[upstream] = f"vision_prompts.prompts.layer{i}"
        for i in range(1, self.depth_text):
            mapping[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"] = f"text_prompts.prompts.layer{i}"
        return mapping
