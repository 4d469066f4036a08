"""``PromptTrainer``: what every CLIP prompt-learning trainer shares, so a method file only builds its model
and writes its loss.

* loads the frozen CLIP named by ``MODEL.BACKBONE`` (checking ``INPUT.SIZE`` against its resolution);
* its config node ``TRAINER.<CONFIG_NODE>`` declared by the method file itself (``node_defaults``, merged into the
  config by ``trainers/config.py``), read through ``self.method_cfg``;
* precision from ``TRAINER.<CONFIG_NODE>.PREC`` (``trainers/precision.py``), fp32 trainable masters, set up when
  the trainer is constructed (before ``build_model``);
* one registered model (under upstream's folder name) optimised over all its parameters, of which only the
  trainable ones have gradients (as upstream: weight decay reaches exactly the trainable tensors);
* checkpoints hold the trainable tensors (and buffers of trainable modules, e.g. BatchNorm statistics) plus
  metadata; loading checks that every trainable tensor is present with the right shape;
* ``forward_backward`` = autocast forward of ``compute_loss`` -> scaled backward -> step -> per-epoch LR update.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.config import ConfigError
from dassl.engine import TrainerX
from dassl.engine.trainer import select_device
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils.errors import UserError

from .backbone import load_clip_with_info
from .precision import PRECISIONS, Precision
from .prompting import format_trainable_report

# Keys upstream checkpoints carry that are rebuilt from the class names, never loaded.
REBUILT_KEYS = ("token_prefix", "token_suffix", "token_midfix", "tokenized_prompts")


class CheckpointMismatchError(UserError, KeyError):
    """A checkpoint lacks trainable tensors this model needs (or has them in another shape)."""


class PromptTrainer(TrainerX):
    """Base class of the CLIP prompt-learning trainers (see module docstring)."""

    CONFIG_NODE = ""  # the TRAINER.<node> holding PREC and the method's keys
    MODEL_NAME = "prompt_learner"  # registered name = checkpoint folder (upstream's)

    # ------------------------------------------------------------------ config node

    @classmethod
    def node_defaults(cls) -> CfgNode:
        """The keys of ``TRAINER.<CONFIG_NODE>`` with their defaults (upstream names and types); a method file
        overrides this. Default: ``PREC`` only."""
        return CfgNode({"PREC": "fp16"})

    @classmethod
    def config_defaults(cls) -> dict[str, CfgNode]:
        return {f"TRAINER.{cls.CONFIG_NODE}": cls.node_defaults()} if cls.CONFIG_NODE else {}

    @classmethod
    def precision_name(cls, cfg) -> str:
        """The ``PREC`` this trainer runs with (checked); VPT overrides it (upstream ignores its PREC)."""
        if not cls.CONFIG_NODE:
            raise ConfigError(
                f"{cls.__name__} sets no CONFIG_NODE: a PromptTrainer reads its keys (PREC at least) from "
                f"TRAINER.<CONFIG_NODE>; set e.g. CONFIG_NODE = \"{cls.__name__.upper()}\" on the class (its keys: "
                "node_defaults())."
            )
        prec = cfg.TRAINER[cls.CONFIG_NODE].PREC
        if prec not in PRECISIONS:
            raise ConfigError(f"TRAINER.{cls.CONFIG_NODE}.PREC must be one of {PRECISIONS}, got '{prec}'")
        return prec

    # ------------------------------------------------------------------ set-up

    def __init__(self, cfg) -> None:
        self.init_method_state(cfg)
        super().__init__(cfg)

    def init_method_state(self, cfg, device: torch.device | None = None) -> None:
        """The state that build_model and the checkpoint hooks rely on, before the engine calls them (tools that
        build a trained model without its dataset, e.g. tools/predict.py, call this too)."""
        self.precision = Precision(self.precision_name(cfg), device if device is not None else select_device(cfg))
        self.loaded_backbones: dict[str, dict] = {}  # what load_backbone loaded, for results.json

    @property
    def method_cfg(self) -> CfgNode:
        """This method's config node, ``TRAINER.<CONFIG_NODE>``."""
        return self.cfg.TRAINER[self.CONFIG_NODE]

    def load_backbone(self, name: str | None = None, path: str | None = None, path_key: str = "MODEL.BACKBONE.PATH"):
        """The frozen CLIP (fp32, eval mode); INPUT.SIZE must equal its input resolution, as upstream asserts.

        What was loaded (``describe_clip`` + name, file, source) is kept in ``self.loaded_backbones[path_key]``
        for ``results.json``: a file given by path may be of another size than its name says.
        """
        cfg = self.cfg
        name = cfg.MODEL.BACKBONE.NAME if name is None else name
        path = cfg.MODEL.BACKBONE.PATH if path is None else path
        print(f"Loading CLIP (backbone: {name})")
        # the layout is set before any prompt hook is attached (the hooks read it when they are built)
        layout = cfg.MODEL.BACKBONE.TOKEN_LAYOUT
        clip_model, info = load_clip_with_info(name, path, path_key=path_key, token_layout=layout)
        self.loaded_backbones[path_key] = info
        resolution = clip_model.visual.image_size
        resolution = resolution[0] if isinstance(resolution, (tuple, list)) else resolution
        if cfg.INPUT.SIZE[0] != resolution:
            raise ConfigError(
                f"INPUT.SIZE {tuple(cfg.INPUT.SIZE)} does not match the {name} input resolution {resolution}; "
                f"set INPUT.SIZE ({resolution}, {resolution})."
            )
        for p in clip_model.parameters():
            p.requires_grad_(False)
        return clip_model

    def register_prompt_model(self, model: nn.Module, registered: nn.Module | None = None) -> None:
        """Cast, move and register ``model``; its trainable tensors must already be the only ones with grad.

        ``registered`` (default: the whole model) is the module that is optimised and checkpointed; CoOp-family
        trainers register their prompt learner, as upstream, so checkpoint keys match upstream's.
        """
        self.precision.cast_frozen(model)
        model.to(self.device)
        self.model = model
        print(format_trainable_report(model))
        registered = model if registered is None else registered
        self.optim = build_optimizer(registered, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model(self.MODEL_NAME, registered, self.optim, self.sched)
        if self.cfg.MODEL.INIT_WEIGHTS:
            self.load_init_weights(self.cfg.MODEL.INIT_WEIGHTS)

    def load_init_weights(self, path: str) -> None:
        """``MODEL.INIT_WEIGHTS``: start from a checkpoint's trained tensors, as the original trainers do (they load
        it into the prompt learner at build time). A file or a run folder; ours or upstream's names; a tensor the
        model trains that the file lacks is an error (upstream skips it silently)."""
        import os.path as osp

        from dassl.utils import load_checkpoint
        from dassl.utils.torchtools import CheckpointNotFoundError

        file = path
        if osp.isdir(path):
            from .student_record import find_checkpoint

            file = str(find_checkpoint(path, model_folder=self.MODEL_NAME))
        if not osp.isfile(file):
            raise CheckpointNotFoundError(
                f"MODEL.INIT_WEIGHTS {path}: no such file or run folder. Point it at a checkpoint "
                f"(e.g. <run>/{self.MODEL_NAME}/model-best.pth.tar) or leave it empty to start from the usual init."
            )
        checkpoint = load_checkpoint(file, map_location="cpu")
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise CheckpointMismatchError(f"MODEL.INIT_WEIGHTS {file} holds no state dict")
        self.load_model_state_dict(self.MODEL_NAME, state)
        print(f"Initialised the trainable tensors from MODEL.INIT_WEIGHTS {file}")

    # ------------------------------------------------------------------ training step

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def compute_loss(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The method's loss and a summary dict of floats for the log line.

        Default: cross-entropy on the model's logits (CoOp, CoCoOp, MaPLe, IVLP, VPT); methods with other losses
        override it.
        """
        logits = self.model(image)  # (batch, n_cls)
        loss = F.cross_entropy(logits, label)
        return loss, {"loss": loss.item(), "acc": compute_accuracy(logits, label)[0].item()}

    def forward_backward(self, batch) -> dict:
        image, label = self.parse_batch_train(batch)
        with self.precision.autocast():
            loss, summary = self.compute_loss(image, label)
        self.model_zero_grad()
        self.detect_anomaly(loss)
        self.precision.backward(loss)
        self.sync_gradients()  # distributed training: the same (averaged) step on every process
        self.precision.step(opt for opt in self._optims.values() if opt is not None)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def non_finite_hint(self) -> str:
        prec = self.precision.prec
        hint = super().non_finite_hint()
        if prec == "fp16":
            hint = (f"TRAINER.{self.CONFIG_NODE}.PREC fp16 overflows easily: try TRAINER.{self.CONFIG_NODE}.PREC amp "
                    f"or bf16. {hint}")  # fmt: skip
        return hint

    def update_lr(self, names=None) -> None:
        # With fp16 the GradScaler may skip the first optimizer steps (inf gradients while it calibrates); torch
        # then warns that the scheduler stepped first. The per-epoch schedule is unaffected, so stay quiet.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            super().update_lr(names)

    @torch.no_grad()
    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.model(image).float()

    # ------------------------------------------------------------------ checkpoints

    def _trainable_keys(self, name: str) -> set[str]:
        model = self._models[name]
        keys = {n for n, p in model.named_parameters() if p.requires_grad}
        trainable_modules = {
            prefix for prefix, module in model.named_modules() if any(p.requires_grad for p in module.parameters(recurse=False))
        }
        for prefix, module in model.named_modules():
            if prefix in trainable_modules:
                for buffer_name in module._buffers:
                    if buffer_name not in module._non_persistent_buffers_set:
                        keys.add(f"{prefix}.{buffer_name}" if prefix else buffer_name)
        return keys

    def model_state_dict(self, name: str) -> dict:
        keys = self._trainable_keys(name)
        return {k: v for k, v in self._models[name].state_dict().items() if k in keys}

    def checkpoint_extras(self) -> dict:
        extras = super().checkpoint_extras()
        extras["meta"] = {
            "trainer": self.cfg.TRAINER.NAME,
            "backbone": self.cfg.MODEL.BACKBONE.NAME,
            "classnames": list(self.dm.dataset.classnames),
            "config": self.cfg.dump(),
        }
        extras["grad_scaler"] = self.precision.state_dict()
        return extras

    def restore_checkpoint_extras(self, checkpoint: dict) -> None:
        super().restore_checkpoint_extras(checkpoint)
        self.precision.load_state_dict(checkpoint.get("grad_scaler") or {})

    def load_model_state_dict(self, name: str, state_dict: dict, strict: bool = True) -> None:
        """Load trainable tensors; tokens rebuilt from class names are dropped; missing ones are an error."""
        state_dict = {k: v for k, v in state_dict.items() if k.rsplit(".", 1)[-1] not in REBUILT_KEYS}
        own = self._models[name].state_dict()
        state_dict = self._from_upstream_names(name, state_dict, own)
        expected = self._trainable_keys(name)
        missing = sorted(expected - set(state_dict))
        wrong = sorted(k for k in expected & set(state_dict) if tuple(state_dict[k].shape) != tuple(own[k].shape))
        if missing or wrong:
            details = []
            if missing:
                details.append(f"missing: {missing}")
            if wrong:
                details.append(
                    "wrong shape: " + ", ".join(f"{k} {tuple(state_dict[k].shape)} != {tuple(own[k].shape)}" for k in wrong)
                )
            raise CheckpointMismatchError(
                f"The checkpoint does not fit this {type(self).__name__} model ({'; '.join(details)}). "
                "Check that the config (prompt depth, n_ctx, CSC, backbone) matches the one it was trained with."
            )
        cast = {k: v.to(own[k].dtype) for k, v in state_dict.items() if k in own}
        self._models[name].load_state_dict(cast, strict=False)

    def _from_upstream_names(self, name: str, state_dict: dict, own: dict) -> dict:
        """Rename an upstream checkpoint's trainable tensors to ours (models with ``upstream_key_map``).

        Upstream files also hold the frozen backbone and, for PromptSRC, a second visual tower: those keys are
        simply not used. Upstream's 1x1 convolutions become our Linear weights (same numbers, reshaped).
        """
        key_map = getattr(self._models[name], "upstream_key_map", None)
        if key_map is None:
            return state_dict
        mapping = {up: ours for up, ours in key_map().items() if up != ours}
        if not any(up in state_dict for up in mapping):
            return state_dict
        print(f"Reading upstream key names for {name} ({len(mapping)} tensors renamed)")
        renamed = dict(state_dict)
        for up, ours in mapping.items():
            if up in renamed and ours in own:
                renamed[ours] = renamed.pop(up).reshape(own[ours].shape)
        return renamed

    def load_model(self, directory: str, epoch: int | None = None) -> None:
        """As Dassl's, through ``load_model_state_dict`` (so upstream files with extra keys load too)."""
        super().load_model(directory, epoch)


__all__ = ["PromptTrainer", "CheckpointMismatchError", "REBUILT_KEYS"]
