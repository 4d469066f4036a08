"""IVLP: independent vision-language prompting, the deep-prompt baseline of MaPLe (Khattak et al., CVPR 2023)
and PromptSRC (ICCV 2023).

One idea: learn deep prompts in *both* towers of a frozen CLIP, independently (no coupling): learnable text
context after SOS plus text prompts overwriting positions 1..n_t in blocks 1..J_t-1, and vision prompts
appended after [CLS, patches] and replaced in blocks 1..J_v-1 (J_v = 0: no vision prompts, the "deep language
prompting" variant). Trained with cross-entropy on the base classes:

    loss = CE(100 * cos(f_img, f_txt), y)

The model is exactly ``IVLPCLIP`` (``prompt_models.py``, shared with PromptSRC and the PromptKD teacher).
Checkpoint folder ``VLPromptLearner/``; our keys map to upstream's through ``IVLPCLIP.upstream_key_map``:
``prompt_learner.ctx`` (same name), ``vision_prompts.prompts.layer0`` <- ``image_encoder.VPT``,
``vision_prompts.prompts.layer{i}`` <- ``image_encoder.transformer.resblocks.{i}.VPT_shallow``,
``text_prompts.prompts.layer{i}`` <- ``text_encoder.transformer.resblocks.{i}.VPT_shallow``.
"""

from __future__ import annotations

from yacs.config import CfgNode

from dassl.config import ConfigError
from dassl.engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .prompt_models import IVLPCLIP, IVLPDesign
from .prompting import freeze_all_but


@TRAINER_REGISTRY.register()
class IVLP(PromptTrainer):
    CONFIG_NODE = "IVLP"
    MODEL_NAME = "VLPromptLearner"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        return CfgNode(
            {
                "N_CTX_VISION": 2,
                "N_CTX_TEXT": 2,
                "CTX_INIT": "a photo of a",
                "PREC": "fp16",
                "PROMPT_DEPTH_VISION": 9,  # max 12, min 0; 0 = no vision prompts
                "PROMPT_DEPTH_TEXT": 9,
            }
        )

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        ivlp = cfg.TRAINER.IVLP
        if ivlp.PROMPT_DEPTH_VISION > 0 and ivlp.N_CTX_VISION < 1:
            raise ConfigError(
                f"TRAINER.IVLP.PROMPT_DEPTH_VISION {ivlp.PROMPT_DEPTH_VISION} needs N_CTX_VISION >= 1 "
                "(or set PROMPT_DEPTH_VISION 0 for no vision prompts)"
            )
        if ivlp.PROMPT_DEPTH_VISION < 0:
            raise ConfigError(f"TRAINER.IVLP.PROMPT_DEPTH_VISION must be >= 0, got {ivlp.PROMPT_DEPTH_VISION}")

    def build_model(self) -> None:
        clip_model = self.load_backbone()
        model = IVLPCLIP(clip_model, self.dm.dataset.classnames, IVLPDesign.from_node(self.method_cfg))
        freeze_all_but(model, model.trainable_modules())
        self.register_prompt_model(model)

    def upstream_key_map(self) -> dict[str, str]:
        """{upstream state_dict key: our key} for the trainable tensors."""
        return self.model.upstream_key_map()
