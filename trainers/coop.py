"""CoOp: "Learning to Prompt for Vision-Language Models" (Zhou et al., IJCV 2022).

One idea: replace the hand-written prompt "a photo of a {class}." by learnable context vectors in front of (or
around) the class-name tokens, trained with cross-entropy on few labeled shots; CLIP stays frozen.
The model is ``CoOpCLIP`` (``prompt_models.py``, shared with ProGrad and KgCoOp); config node ``TRAINER.COOP``.
Checkpoint: the prompt learner (``prompt_learner/``), keys ``ctx`` as upstream.
"""

from __future__ import annotations

from yacs.config import CfgNode

from dassl.engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .prompt_models import CoOpCLIP, coop_node_defaults
from .prompting import freeze_all_but


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    CONFIG_NODE = "COOP"
    MODEL_NAME = "prompt_learner"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        return coop_node_defaults()

    def build_model(self) -> None:
        coop = self.method_cfg
        clip_model = self.load_backbone()
        model = CoOpCLIP(
            clip_model, self.dm.dataset.classnames, n_ctx=coop.N_CTX, ctx_init=coop.CTX_INIT, csc=coop.CSC,
            class_token_position=coop.CLASS_TOKEN_POSITION,
        )  # fmt: skip
        freeze_all_but(model, [model.prompt_learner])
        self.register_prompt_model(model, registered=model.prompt_learner)
