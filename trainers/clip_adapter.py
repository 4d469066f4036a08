"""CLIP-Adapter (Gao et al., 2021): a residual bottleneck MLP on the frozen CLIP image features."""

import torch.nn as nn
import torch.nn.functional as F

from dassl.engine import TRAINER_REGISTRY
from trainers.base import PromptTrainer
from trainers.prompting import class_text_features  # frozen CLIP features of "a photo of a {class}."


class AdapterCLIP(nn.Module):
    def __init__(self, clip_model, text_features, ratio: float = 0.2, reduction: int = 4) -> None:
        super().__init__()
        dim = text_features.shape[1]
        self.visual, self.logit_scale, self.ratio = clip_model.visual, clip_model.logit_scale, ratio
        self.adapter = nn.Sequential(nn.Linear(dim, dim // reduction, bias=False), nn.ReLU(),
                                     nn.Linear(dim // reduction, dim, bias=False), nn.ReLU())
        self.register_buffer("text_features", text_features, persistent=False)

    def forward(self, image):
        features = self.visual(image)
        features = self.ratio * self.adapter(features) + (1 - self.ratio) * features
        return self.logit_scale.exp() * F.normalize(features, dim=-1) @ self.text_features.t()


@TRAINER_REGISTRY.register()
class CLIPAdapter(PromptTrainer):
    CONFIG_NODE = "COOP"  # reads TRAINER.COOP.PREC; own keys: a new CONFIG_NODE + node_defaults()
    MODEL_NAME = "adapter"  # the checkpoint folder

    def build_model(self) -> None:
        clip_model = self.load_backbone().to(self.device)  # frozen
        text_features = class_text_features(clip_model, self.dm.dataset.classnames)
        self.register_prompt_model(AdapterCLIP(clip_model, text_features))

    # the loss: PromptTrainer's cross-entropy on self.model(image); override compute_loss for another one
