"""PromptSRC: "Self-regulating Prompts: Foundational Model Adaptation without Forgetting" (Khattak et al., ICCV 2023).

One idea: learn IVLP deep prompts with cross-entropy while regulating them towards the frozen CLIP: the prompted
text / image features stay close (L1) to the frozen ones and the prompted logits close (KL) to zero-shot logits
from 60 averaged templates; Gaussian prompt aggregation (GPA) averages the prompts of late epochs.
In this toolkit it is also stage 1 of PromptKD: the ViT-L/14 teacher (``vit_l14_c2_ep20_batch8_4+4ctx.yaml``).

    loss = CE + L_scl_logits + TEXT_LOSS_WEIGHT * L1(text) + IMAGE_LOSS_WEIGHT * L1(image)
    L_scl_logits = sum KL(p_zs || p) / (B * N)          (T = 1, not batchmean)

Deliberate differences (docs/design.md#promptsrc): the frozen reference image encoder is the same frozen backbone
run without prompts (upstream keeps a second copy), and GPA averages the trainable tensors only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.engine import TRAINER_REGISTRY
from dassl.metrics import compute_accuracy

from .base import PromptTrainer
from .prompt_models import IVLPCLIP, IVLPDesign
from .prompting import class_text_features, freeze_all_but
from .templates import IMAGENET_TEMPLATES_60


def gpa_weights(max_epoch: int, mean: float, std: float) -> np.ndarray:
    """Gaussian prompt aggregation weights g(e) = N(e; mean, std) for e = 1..max_epoch, normalised to sum 1."""
    epochs = np.arange(1, max_epoch + 1, dtype=np.float64)
    gauss = (1 / (std * np.sqrt(2 * np.pi))) * np.exp(-0.5 * ((epochs - mean) / std) ** 2)
    return gauss / gauss.sum()


class PromptSRCCLIP(IVLPCLIP):
    """IVLP CLIP + the frozen zero-shot references PromptSRC regulates towards."""

    @torch.no_grad()
    def compute_fixed_embeddings(self, clip_model: nn.Module, classnames: list[str], templates=IMAGENET_TEMPLATES_60) -> None:
        """Frozen CLIP text features averaged over the templates (not normalised), as ``fixed_embeddings``."""
        fixed = class_text_features(clip_model, classnames, templates, normalize=False)  # (n_cls, d)
        self.register_buffer("fixed_embeddings", fixed, persistent=False)

    def forward_train(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every quantity of the training loss (features normalised)."""
        text_features = F.normalize(self.encode_text(), dim=-1)  # (n_cls, d)
        image_features = F.normalize(self.encode_image(image), dim=-1)  # (batch, d)
        scale = self.logit_scale.exp()
        with torch.no_grad():
            zs_text = F.normalize(self.fixed_embeddings, dim=-1)
            zs_image = F.normalize(self.encode_image(image, prompts=False), dim=-1)
            zs_logits = scale * zs_image @ zs_text.t()
        return {
            "text_features": text_features,
            "image_features": image_features,
            "zs_text_features": zs_text,
            "zs_image_features": zs_image,
            "logits": scale * image_features @ text_features.t(),
            "zs_logits": zs_logits,
        }


def promptsrc_loss(out: dict[str, torch.Tensor], label: torch.Tensor, text_weight: float, image_weight: float) -> dict:
    """PromptSRC's loss terms, written as the formula reads (module docstring)."""
    logits, zs_logits = out["logits"].float(), out["zs_logits"].float()
    loss_ce = F.cross_entropy(logits, label)
    l1_text = F.l1_loss(out["text_features"].float(), out["zs_text_features"].float(), reduction="mean")
    l1_image = F.l1_loss(out["image_features"].float(), out["zs_image_features"].float(), reduction="mean")
    kl_div_sum = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(zs_logits, dim=1), reduction="sum", log_target=True)
    terms = {
        "loss_ce": loss_ce,
        "L_scl_text": l1_text * text_weight,
        "L_scl_image": l1_image * image_weight,
        "kl_div_sum": kl_div_sum,
        "L_scl_logits": kl_div_sum / logits.numel(),
    }
    terms["loss"] = loss_ce + (terms["L_scl_logits"] + terms["L_scl_text"] + terms["L_scl_image"])
    return terms


@TRAINER_REGISTRY.register()
class PromptSRC(PromptTrainer):
    CONFIG_NODE = "PROMPTSRC"
    MODEL_NAME = "VLPromptLearner"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        return CfgNode(
            {
                "N_CTX_VISION": 4,
                "N_CTX_TEXT": 4,
                "CTX_INIT": "a photo of a",
                "PREC": "fp16",
                "PROMPT_DEPTH_VISION": 9,
                "PROMPT_DEPTH_TEXT": 9,
                "TEXT_LOSS_WEIGHT": 25,  # int, as upstream
                "IMAGE_LOSS_WEIGHT": 10,
                "GPA_MEAN": 15,
                "GPA_STD": 1,
                # Ours: encode the class prompts in chunks of this many (0 = all at once), with activation
                # checkpointing when training, so teacher memory does not grow with the class count (same results)
                "TEXT_CHUNK": 0,
            }
        )

    def __init__(self, cfg) -> None:
        self.gpa_sum: dict[str, torch.Tensor] | None = None  # GPA's running sum of the trainable tensors
        super().__init__(cfg)

    def build_model(self) -> None:
        cfg, src = self.cfg, self.method_cfg
        classnames = self.dm.dataset.classnames
        clip_model = self.load_backbone()
        model = PromptSRCCLIP(clip_model, classnames, IVLPDesign.from_node(src), text_chunk=src.TEXT_CHUNK)
        freeze_all_but(model, model.trainable_modules())
        model.to(self.device)
        print(f"Computing the frozen text features of {len(classnames)} classes over {len(IMAGENET_TEMPLATES_60)} templates")
        model.compute_fixed_embeddings(clip_model.to(self.device), classnames)
        self.register_prompt_model(model)
        self.gpa = gpa_weights(cfg.OPTIM.MAX_EPOCH, src.GPA_MEAN, src.GPA_STD)

    def compute_loss(self, image, label):
        src = self.method_cfg
        out = self.model.forward_train(image)
        terms = promptsrc_loss(out, label, src.TEXT_LOSS_WEIGHT, src.IMAGE_LOSS_WEIGHT)
        summary = {
            "loss": terms["loss"].item(),
            "ce": terms["loss_ce"].item(),
            "scl": (terms["L_scl_logits"] + terms["L_scl_text"] + terms["L_scl_image"]).item(),
            "acc": compute_accuracy(out["logits"], label)[0].item(),
        }
        return terms["loss"], summary

    def forward_backward(self, batch) -> dict:
        summary = super().forward_backward(batch)  # steps the LR after the last batch of the epoch
        if (self.batch_idx + 1) == self.num_batches:
            self._aggregate_prompts()
        return summary

    @torch.no_grad()
    def _aggregate_prompts(self) -> None:
        """GPA: add g(epoch) x the trainable tensors to a running sum; after the last epoch, load the sum."""
        weight = float(self.gpa[self.epoch])
        state = self.model_state_dict(self.MODEL_NAME)
        if self.gpa_sum is None:
            self.gpa_sum = {k: v.detach().clone() * weight for k, v in state.items()}
        else:
            self.gpa_sum = {k: self.gpa_sum[k] + v.detach() * weight for k, v in state.items()}
        if self.epoch + 1 == self.max_epoch:
            print("Using GPA model for final inference...")
            self.load_model_state_dict(self.MODEL_NAME, self.gpa_sum)

    def checkpoint_extras(self) -> dict:
        extras = super().checkpoint_extras()
        extras["gpa_sum"] = self.gpa_sum
        return extras

    def restore_checkpoint_extras(self, checkpoint: dict) -> None:
        super().restore_checkpoint_extras(checkpoint)
        self.gpa_sum = checkpoint.get("gpa_sum")
