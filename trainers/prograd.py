"""ProGrad: "Prompt-aligned Gradient for Prompt Tuning" (Zhu et al., ICCV 2023), as the KgCoOp repository runs it
(its Dassl.ProGrad fork).

One idea: a CoOp prompt trained on few shots forgets the general knowledge of the zero-shot CLIP. Keep only the
part of the cross-entropy gradient that does not conflict with the gradient of the KL to the zero-shot logits:

    g_ce = grad CE(p, y),  g_kl = grad T^2 * CE(softmax(z / T), p / T)        (z: zero-shot CLIP logits)
    g = g_ce - LAMBDA * <g_ce, ĝ_kl> ĝ_kl   if <g_ce, g_kl> < 0, else g_ce    (ĝ = g / |g|, per parameter)

``LOSS.NAME "prograd"`` switches the rule on (otherwise plain CoOp); ``LOSS.LAMBDA`` and ``LOSS.T`` as upstream.
The prompt and its keys are CoOp's (TRAINER.COOP.*); the zero-shot logits use the dataset's hand-crafted
template with the same frozen CLIP. Checkpoint: ``prompt_learner/``, key ``ctx``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.config import ConfigError
from dassl.engine import TRAINER_REGISTRY
from dassl.metrics import compute_accuracy

from .base import PromptTrainer
from .prompt_models import CoOpCLIP, coop_node_defaults  # ProGrad is CoOp's model with another gradient rule
from .prompting import class_text_features, freeze_all_but
from .templates import custom_template


def prograd_losses(logits: torch.Tensor, zs_logits: torch.Tensor, label: torch.Tensor, temperature: float):
    """(CE to the labels, T^2 * soft cross-entropy to the zero-shot distribution), both batch means."""
    loss_ce = F.cross_entropy(logits, label)
    zs_prob = F.softmax(zs_logits.float() / temperature, dim=-1)
    loss_kl = -(zs_prob * F.log_softmax(logits.float() / temperature, dim=-1)).sum(dim=-1).mean()
    return loss_ce, loss_kl * temperature * temperature


def project_conflicting(grad: torch.Tensor, general: torch.Tensor, strength: float) -> torch.Tensor:
    """``grad`` without ``strength`` times its component along ``general`` when the two point apart."""
    direction = general / general.norm().clamp_min(1e-12)
    dot = torch.dot(grad.flatten(), direction.flatten())
    return grad - strength * dot * direction if dot < 0 else grad


@TRAINER_REGISTRY.register()
class ProGrad(PromptTrainer):
    CONFIG_NODE = "COOP"
    MODEL_NAME = "prompt_learner"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        return coop_node_defaults()

    @classmethod
    def config_defaults(cls) -> dict[str, CfgNode]:
        """TRAINER.COOP plus the Dassl.ProGrad fork's ``LOSS`` node, with upstream's names and types."""
        loss = CfgNode(
            {
                "GM": False,  # declared upstream, never read
                "NAME": "",  # "prograd" selects the prompt-aligned gradient
                "ALPHA": 0.0,  # declared upstream, never read
                "T": 1.0,  # temperature of the KL to the zero-shot CLIP's logits
                "LAMBDA": 1.0,  # how much of the conflicting gradient component is removed (1.0 = all of it)
            }
        )
        return {**super().config_defaults(), "LOSS": loss}

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        if cfg.LOSS.NAME not in ("", "prograd"):
            raise ConfigError(f"LOSS.NAME must be 'prograd' (or '' for plain CoOp), got '{cfg.LOSS.NAME}'")

    def build_model(self) -> None:
        coop, classnames = self.method_cfg, self.dm.dataset.classnames
        clip_model = self.load_backbone()
        model = CoOpCLIP(
            clip_model, classnames, n_ctx=coop.N_CTX, ctx_init=coop.CTX_INIT, csc=coop.CSC,
            class_token_position=coop.CLASS_TOKEN_POSITION,
        )  # fmt: skip
        freeze_all_but(model, [model.prompt_learner])
        self.register_prompt_model(model, registered=model.prompt_learner)
        template = custom_template(self.cfg.DATASET.NAME)
        print(f"Zero-shot logits from the template {template!r}")
        clip_model.to(self.device)
        with torch.no_grad(), self.precision.autocast():
            self.zs_text_features = class_text_features(clip_model, classnames, [template]).float()

    def zero_shot_logits(self, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = F.normalize(self.model.image_encoder(image).float(), dim=-1)  # (batch, d)
            return self.model.logit_scale.exp() * features @ self.zs_text_features.t()  # (batch, n_cls)

    def forward_backward(self, batch) -> dict:
        if self.cfg.LOSS.NAME != "prograd":
            return super().forward_backward(batch)
        image, label = self.parse_batch_train(batch)
        with self.precision.autocast():
            logits = self.model(image)
            zs_logits = self.zero_shot_logits(image)
        loss_ce, loss_kl = prograd_losses(logits, zs_logits, label, self.cfg.LOSS.T)
        self.detect_anomaly(loss_ce)
        params = [p for p in self.model.parameters() if p.requires_grad]
        scaler = self.precision.scaler  # both gradients carry the same scale; the projection is linear in g_ce
        self.model_zero_grad()
        scaler.scale(loss_kl).backward(retain_graph=True)
        general = [p.grad.detach().clone() for p in params]
        self.model_zero_grad()
        scaler.scale(loss_ce).backward()
        for p, g in zip(params, general):
            p.grad = project_conflicting(p.grad, g, self.cfg.LOSS.LAMBDA)
        self.sync_gradients()
        self.precision.step(opt for opt in self._optims.values() if opt is not None)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {
            "loss": loss_ce.item(),
            "kl": loss_kl.item(),
            "acc": compute_accuracy(logits, label)[0].item(),
        }
