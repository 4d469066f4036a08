"""CoOp: "Learning to Prompt for Vision-Language Models" (Zhou et al., IJCV 2022).

One idea: replace the hand-written prompt "a photo of a {class}." by learnable context vectors in front of (or
around) the class-name tokens, trained with cross-entropy on few labeled shots; CLIP stays frozen.
Checkpoint: the prompt learner (``prompt_learner/``), keys ``ctx`` as upstream.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .prompting import TextEncoder, TextPromptLearner, freeze_all_but


class CoOpCLIP(nn.Module):
    """Frozen CLIP whose class text features come from learned context + class-name tokens."""

    def __init__(self, cfg, classnames: list[str], clip_model: nn.Module) -> None:
        super().__init__()
        coop = cfg.TRAINER.COOP
        self.prompt_learner = TextPromptLearner(
            clip_model,
            classnames,
            n_ctx=coop.N_CTX,
            ctx_init=coop.CTX_INIT,
            init_family="coop",
            csc=coop.CSC,
            class_token_position=coop.CLASS_TOKEN_POSITION,
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


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    CONFIG_NODE = "COOP"
    MODEL_NAME = "prompt_learner"

    def build_model(self) -> None:
        clip_model = self.load_backbone()
        model = CoOpCLIP(self.cfg, self.dm.dataset.classnames, clip_model)
        freeze_all_but(model, [model.prompt_learner])
        self.register_prompt_model(model, registered=model.prompt_learner)

