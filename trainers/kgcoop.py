"""KgCoOp: "Visual-Language Prompt Tuning with Knowledge-guided Context Optimization" (Yao et al., CVPR 2023).

One idea: CoOp's learned class text features drift away from CLIP's hand-crafted ones and lose the general
knowledge that novel classes need; keep them close to the frozen hand-crafted features t^clip:

    loss = CE(logits, y) + W * (1 - mean_c cos(t_c, t_c^clip))       (W = TRAINER.COOP.W, 8.0 in the scripts)

The prompt is CoOp's "end" prompt (TRAINER.COOP.* keys; CLASS_TOKEN_POSITION is ignored, as upstream); a non-empty
CTX_INIT always means "a photo of a" (4 context tokens), whatever its value, as upstream. t^clip is the normalised
feature of KgCoOp's template per class (the zero-shot table, except DescribableTextures), computed once.

Deliberate differences from upstream:
* t^clip is computed with the same frozen CLIP the model uses (upstream loads a second copy);
* upstream's dead weights are not built: ``bias_vectors``, ``meta_net.linear1`` (in the prompt learner) and an
  ``adapter`` never reach the outputs or the loss; they only consumed RNG draws and checkpoint space. Upstream
  checkpoints that hold them still load (the extra keys are ignored).
Checkpoint: the prompt learner (``prompt_learner/``), key ``ctx`` as upstream.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.engine import TRAINER_REGISTRY
from dassl.metrics import compute_accuracy

from .base import PromptTrainer
from .prompt_models import CoOpCLIP, coop_node_defaults
from .prompting import class_text_features, freeze_all_but
from .templates import custom_template

# KgCoOp's template table = the zero-shot CUSTOM_TEMPLATES except this entry.
KGCOOP_TEMPLATE_OVERRIDES = {"DescribableTextures": "a photo of a {}, a type of texture."}
KGCOOP_CTX_INIT = "a photo of a"  # used whenever TRAINER.COOP.CTX_INIT is non-empty


def kgcoop_template(dataset_name: str) -> str:
    """The hand-crafted template whose features anchor KgCoOp's learned text features."""
    return KGCOOP_TEMPLATE_OVERRIDES.get(dataset_name, custom_template(dataset_name))


class KgCoOpCLIP(CoOpCLIP):
    """CoOp CLIP ("end" prompt) + the frozen hand-crafted class features ``clip_text_features`` (``set_anchor``)."""

    def __init__(self, clip_model: nn.Module, classnames: list[str], n_ctx: int, ctx_init: str, csc: bool) -> None:
        ctx_init = KGCOOP_CTX_INIT if ctx_init else ""
        # upstream ignores CSC when the context comes from the phrase, and the class-token position
        super().__init__(clip_model, classnames, n_ctx, ctx_init, csc=csc and not ctx_init, class_token_position="end")
        self.register_buffer("clip_text_features", torch.empty(0), persistent=False)

    def set_anchor(self, clip_text_features: torch.Tensor) -> None:
        """The normalised hand-crafted text features (n_cls, d), rebuilt from the class names, never saved."""
        self.clip_text_features = clip_text_features.detach().float()

    def forward_train(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (batch, n_cls) and the learned text features (n_cls, d), normalised."""
        text_features = self.text_features()
        image_features = F.normalize(self.image_encoder(image), dim=-1)  # (batch, d)
        return self.logit_scale.exp() * image_features @ text_features.t(), text_features

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_train(image)[0]


def kg_loss(text_features: torch.Tensor, clip_text_features: torch.Tensor) -> torch.Tensor:
    """L_kg = 1 - mean over classes of cos(t_c, t_c^clip), cosine eps 1e-7 as upstream."""
    cos = F.cosine_similarity(text_features.float(), clip_text_features.float(), dim=1, eps=1e-7)
    return 1.0 - cos.mean()


@TRAINER_REGISTRY.register()
class KgCoOp(PromptTrainer):
    CONFIG_NODE = "COOP"
    MODEL_NAME = "prompt_learner"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        node = coop_node_defaults()
        node.W = 1.0  # weight of the knowledge-guided loss
        node.ALPHA = 1.0  # declared by KgCoOp's train.py, never read
        return node

    def build_model(self) -> None:
        coop, classnames = self.method_cfg, self.dm.dataset.classnames
        clip_model = self.load_backbone()
        model = KgCoOpCLIP(clip_model, classnames, n_ctx=coop.N_CTX, ctx_init=coop.CTX_INIT, csc=coop.CSC)
        freeze_all_but(model, [model.prompt_learner])
        self.register_prompt_model(model, registered=model.prompt_learner)
        template = kgcoop_template(self.cfg.DATASET.NAME)
        print(f"Hand-crafted anchor template: {template!r}")
        clip_model.to(self.device)  # the same frozen CLIP (already in the storage precision)
        with self.precision.autocast():
            model.set_anchor(class_text_features(clip_model, classnames, [template]))

    def compute_loss(self, image, label):
        logits, text_features = self.model.forward_train(image)
        loss_ce = F.cross_entropy(logits, label)
        loss_kg = kg_loss(text_features, self.model.clip_text_features)
        loss = loss_ce + self.method_cfg.W * loss_kg
        summary = {
            "loss": loss.item(),
            "ce": loss_ce.item(),
            "kg": loss_kg.item(),
            "acc": compute_accuracy(logits, label)[0].item(),
        }
        return loss, summary
