"""``extend_cfg``: the protocol-level keys the engine defaults lack, plus the config node of every registered trainer.

Each method file declares its own node (``config_defaults`` on the trainer class, ``trainers/base.py``), with the
upstream names, types and defaults: yacs rejects keys without a default and checks every override's type against
it, so upstream yaml files and script flags only load if these match exactly (e.g. PromptSRC's loss weights are
ints). The registry is read when ``extend_cfg`` is called, so a trainer registered later (a plugin file loaded by
``train.py --plugin``, ``dassl/utils/plugins.py``) brings its keys along.
"""

from __future__ import annotations

from yacs.config import CfgNode as CN

from dassl.config import ConfigError
from dassl.engine import TRAINER_REGISTRY


class ConfigNodeConflictError(ConfigError):
    """Two registered trainers declare the same config key with different defaults (or types)."""


def extend_cfg(cfg: CN) -> CN:
    """Add the protocol keys and every registered trainer's config nodes to ``cfg`` (in place)."""
    # Protocol (dassl/evaluation/protocol.py): which classes a standard run keeps (all, base, new)
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    # Ours (datasets/common.py): which splits a dataset builds. auto = transductive for PromptKD, else standard
    cfg.DATASET.PROTOCOL = "auto"
    # Ours: the split used for model selection: "val" = the json val split (CoOp, MaPLe, PromptSRC), "test" = the
    # test split (the PromptKD repository); "auto" = each upstream's choice (datasets/common.py resolve_val_source)
    cfg.DATASET.VAL_SOURCE = "auto"
    # Ours: import an upstream few-shot cache (split_fewshot/*.pkl) through a restricted unpickler
    cfg.DATASET.READ_UPSTREAM_PKL = False
    # PromptKD's protocol switch (base2novel or cross); read by the dataset classes for the student's splits
    cfg.TRAINER.MODAL = "base2novel"
    # Ours: an explicit CLIP checkpoint file (empty: look up MODEL.BACKBONE.NAME in the CLIP cache dir)
    cfg.MODEL.BACKBONE.PATH = ""
    # Ours: how the CLIP transformers hold their tokens (trainers/backbone.py TOKEN_LAYOUTS). tokens_first is OpenAI's
    # CLIP layout, which the upstream repositories run; batch_first is open_clip's (the toolkit's layout until 2026-12).
    cfg.MODEL.BACKBONE.TOKEN_LAYOUT = "tokens_first"
    add_trainer_nodes(cfg)
    return cfg


def add_trainer_nodes(cfg: CN) -> None:
    """Merge ``config_defaults()`` of every registered trainer into ``cfg``.

    Trainers may share a node (KgCoOp and ProGrad read ``TRAINER.COOP``); a key two of them declare must have the
    same default and type, otherwise which one wins would depend on the registration order.
    """
    owners: dict[str, str] = {}  # full key -> the trainer that declared it first
    for name in TRAINER_REGISTRY.registered_names():
        trainer = TRAINER_REGISTRY.get(name)
        declare = getattr(trainer, "config_defaults", None)  # Dassl-style trainers may lack the hook
        for path, node in (declare() if declare is not None else {}).items():
            _merge_node(cfg, path, node, name, owners)


def _merge_node(cfg: CN, path: str, defaults: CN, trainer: str, owners: dict[str, str]) -> None:
    target = cfg
    for part in path.split("."):
        if part not in target:
            target[part] = CN()
        target = target[part]
        if not isinstance(target, CN):
            raise ConfigNodeConflictError(f"{trainer} declares the config node {path}, but {part} is a key, not a node")
    for key, value in defaults.items():
        full_key = f"{path}.{key}"
        if isinstance(value, CN):
            _merge_node(cfg, full_key, value, trainer, owners)
            continue
        if key in target and (type(target[key]) is not type(value) or target[key] != value):
            first = owners.get(full_key, "the engine defaults")
            raise ConfigNodeConflictError(
                f"{full_key}: {trainer} declares the default {value!r} ({type(value).__name__}), {first} declares "
                f"{target[key]!r} ({type(target[key]).__name__}). Give {trainer} its own CONFIG_NODE, or use the "
                "same default."
            )
        target[key] = value
        owners.setdefault(full_key, trainer)
