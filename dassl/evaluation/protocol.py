"""The evaluation protocol of a run: one object, built once from the config, that answers every question about what
a number means.

* **Class partition**: base = the first ``ceil(n/2)`` labels of a dataset, novel = the rest (CoOp's base-to-novel
  split; ``base_class_count``). Nothing else in the toolkit computes it.
* **Training split**: which images (and classes) the method trains on.
* **Named evaluations**: which images (``val`` / ``test`` split), which class slice (``all`` / ``base`` / ``new``),
  what the number counts as (``selection``, ``base``, ``novel``, ``accuracy``) and when it is taken (``epoch``:
  every epoch, to select the deployed model; ``final``: the deployed model; ``last``: the last-epoch model, next to
  a selected one).
* **Selection rule** (``TEST.FINAL_MODEL``: ``best_val`` or ``last_step``) and the **results summary** (base,
  novel, HM, accuracy) that ``results.json`` carries (``dassl/evaluation/results.py``).

Two kinds, chosen by the trainer class (``PROTOCOL`` attribute, e.g. ``"transductive"`` for the PromptKD student)
unless ``DATASET.PROTOCOL`` names one:

* ``standard`` (prompt learning, CoOp-style): the model is built for the classes ``DATASET.SUBSAMPLE_CLASSES``
  keeps (all / base / new, relabelled from 0) and trained on their train images; it is selected on their
  val images (or test images with ``DATASET.VAL_SOURCE test``) and tested on their test images. Base and novel
  numbers come from two runs (train on base, evaluate on new).
* ``transductive`` (distillation on unlabeled data, PromptKD): with ``TRAINER.MODAL base2novel`` the model is built
  for **all** classes and trained on the unlabeled train images of all of them; the base-class test images scored
  against the base classes give the base number, the novel-class ones against the novel classes the novel number.
  With ``TRAINER.MODAL cross`` it trains on the target's train split and is tested on its test split.

Model selection split (``DATASET.VAL_SOURCE``): ``test`` is the PromptKD repository's choice (its dataset classes
pass the test split as val: "parity"), ``val`` the json val split as CoOp, MaPLe and PromptSRC select; ``auto`` is
each upstream's own choice (``resolve_val_source``). In parity mode the base number of the deployed model *is* the
selection evaluation at the deployed epoch (same images, same classes), so it is not evaluated twice
(``Evaluation.same_as``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from dassl.config import ConfigError

if TYPE_CHECKING:  # dassl.data builds its loaders from a protocol: import Datum lazily
    from dassl.data.datasets import Datum

KINDS = ("standard", "transductive")
PROTOCOL_CHOICES = ("auto", *KINDS)
MODALS = ("base2novel", "cross")
VAL_SOURCES = ("auto", "test", "val")
SUBSAMPLE_CHOICES = ("all", "base", "new")
SELECTION_RULES = ("best_val", "last_step")
ROLES = ("selection", "base", "novel", "accuracy")
WHEN = ("epoch", "final", "last")
# what a test on a class slice counts as
ROLE_OF_CLASSES = {"all": "accuracy", "base": "base", "new": "novel"}
CLASS_WORDS = {"all": "", "base": "base-class ", "new": "novel-class "}


def base_class_count(num_classes: int) -> int:
    """The number of base classes: the first ``ceil(n/2)`` labels; the other labels are the novel classes."""
    return math.ceil(num_classes / 2)


def harmonic_mean(base: float, novel: float) -> float:
    """HM of base and novel accuracy, the base-to-novel tables' headline number (0 when both are 0)."""
    return 2 * base * novel / (base + novel) if base + novel > 0 else 0.0


@dataclass(frozen=True)
class ClassPartition:
    """The sorted labels of a dataset and their base / novel halves."""

    labels: tuple[int, ...]

    @classmethod
    def of(cls, data: Sequence[Datum]) -> ClassPartition:
        """The partition of the labels that occur in ``data`` (the train split, as CoOp subsamples)."""
        return cls(tuple(sorted({item.label for item in data})))

    @property
    def num_base(self) -> int:
        return base_class_count(len(self.labels))

    def select(self, classes: str) -> tuple[int, ...]:
        """The labels of ``all``, ``base`` or ``new`` classes."""
        if classes not in SUBSAMPLE_CHOICES:
            raise ConfigError(f"DATASET.SUBSAMPLE_CLASSES must be one of {SUBSAMPLE_CHOICES}, got '{classes}'")
        if classes == "base":
            return self.labels[: self.num_base]
        if classes == "new":
            return self.labels[self.num_base :]
        return self.labels

    def subsample(self, data: Sequence[Datum], classes: str) -> list[Datum]:
        """The items of ``classes``, relabelled from 0 in label order (``all``: unchanged)."""
        from dassl.data.datasets import Datum

        if classes == "all":
            return list(data)
        relabel = {label: new for new, label in enumerate(self.select(classes))}
        return [
            Datum(impath=item.impath, label=relabel[item.label], domain=item.domain, classname=item.classname)
            for item in data
            if item.label in relabel
        ]

    def columns(self, model_classes: str, classes: str) -> slice | None:
        """The logit columns of ``classes`` among a model's ``model_classes`` outputs (None: all of them)."""
        if classes == model_classes:
            return None
        if model_classes != "all":
            raise ConfigError(f"a model of the {model_classes} classes cannot be evaluated on the {classes} classes")
        return slice(0, self.num_base) if classes == "base" else slice(self.num_base, len(self.labels))


@dataclass(frozen=True)
class Evaluation:
    """One named evaluation: ``images`` (``val``/``test`` split) scored against ``classes``, counted as ``role``."""

    name: str  # the record's "split" field: val, test, test_base
    images: str  # val | test
    classes: str  # all | base | new (of the dataset's classes)
    role: str  # selection | base | novel | accuracy
    when: str  # epoch | final | last
    same_as: str | None = None  # an evaluation of the same images and classes (parity: its deployed-epoch number)
    record_as: str | None = None  # the record's split name when it is not ``name`` (the last-epoch test: "test")

    @property
    def split(self) -> str:
        """The name the record (evaluations.jsonl, results.json) files it under."""
        return self.record_as or self.name

    def describe(self, protocol: Protocol) -> str:
        """What it measures, in words (the log's ``*val*`` is often not the json val split)."""
        images = f"{CLASS_WORDS[self.classes]}{self.images} images"
        if self.role == "selection":
            source = " (as the original)" if self.images == "test" else ""
            return f"selection split: {images}{source}"
        if protocol.kind == "transductive" and self.images == "test" and self.classes != "all":
            return f"{CLASS_WORDS[self.classes]}test images"
        return images


@dataclass(frozen=True)
class Protocol:
    """What a run trains on, what it evaluates, which model it deploys and what goes into its results."""

    kind: str  # standard | transductive
    modal: str  # base2novel | cross (transductive), "" (standard)
    subsample: str  # DATASET.SUBSAMPLE_CLASSES as the run uses it
    val_source: str  # test | val: the images of the selection evaluation
    selection_rule: str  # best_val | last_step
    model_classes: str  # the classes the model has outputs for: all | base | new
    train_classes: str  # the classes whose train images it trains on
    evaluations: tuple[Evaluation, ...] = field(default_factory=tuple)
    main: str = "test"  # the evaluation results.json's "final" is (the deployed model's headline test)
    # the images and classes a selection evaluates (Dassl's ``val``), also when the rule (last_step) runs none
    selection_split: Evaluation | None = None

    # -------------------------------------------------------------------------------------------- lookups
    def get(self, name: str) -> Evaluation:
        for evaluation in self.evaluations:
            if evaluation.name == name:
                return evaluation
        raise KeyError(f"the protocol has no evaluation '{name}' (it has {[e.name for e in self.evaluations]})")

    @property
    def selection(self) -> Evaluation | None:
        """The per-epoch evaluation that selects the deployed model (None with ``last_step``)."""
        return next((e for e in self.evaluations if e.role == "selection"), None)

    @property
    def finals(self) -> list[Evaluation]:
        """The deployed model's evaluations, the main one last."""
        finals = [e for e in self.evaluations if e.when == "final"]
        return sorted(finals, key=lambda e: e.name == self.main)

    @property
    def last_epoch(self) -> list[Evaluation]:
        """Evaluations of the last-epoch model, taken before the selected one is deployed."""
        return [e for e in self.evaluations if e.when == "last"]

    def for_split(self, split: str) -> Evaluation:
        """Dassl's ``test(split)``: ``val`` is the selection evaluation (the main test without one), ``test`` the
        main test."""
        if split == "val" and self.selection is not None:
            return self.selection
        if split in ("val", "test"):
            return self.get(self.main)
        return self.get(split)

    # -------------------------------------------------------------------------------------------- data
    def apply(self, dataset) -> ProtocolData:
        """The training items and every evaluation's items of ``dataset`` (full train / val / test splits)."""
        train, val, test = dataset.train_x, dataset.val or [], dataset.test or []
        partition = ClassPartition.of(train)
        if not getattr(dataset, "class_subsampling", True):
            # test-only sets (ImageNet-A/R/V2/Sketch): every class, as upstream
            partition_for = "all"
        else:
            partition_for = None
        splits = {"val": val, "test": test}

        def items(data: Sequence[Datum], classes: str) -> list[Datum]:
            return partition.subsample(data, partition_for or classes)

        evaluation_items = {e.name: items(splits[e.images], e.classes) for e in self.evaluations}
        val_items = []
        if self.selection_split is not None:
            val_items = items(splits[self.selection_split.images], self.selection_split.classes)
        selection = self.selection
        if selection is not None and not evaluation_items[selection.name]:
            raise ConfigError(
                f"{type(dataset).__name__} has no {selection.images} split, so DATASET.VAL_SOURCE {self.val_source} "
                "cannot select models; use DATASET.VAL_SOURCE test (upstream's choice) or TEST.FINAL_MODEL last_step."
            )
        return ProtocolData(
            partition=partition,
            train=items(train, self.train_classes),
            model_items=items(train, self.model_classes),
            evaluations=evaluation_items,
            val=val_items,
        )

    def columns(self, partition: ClassPartition, evaluation: Evaluation) -> slice | None:
        """The model's logit columns that ``evaluation`` scores against."""
        return partition.columns(self.model_classes, evaluation.classes)

    def describe(self) -> dict:
        """The protocol as results.json records it."""
        data = asdict(self)
        data["evaluations"] = [asdict(e) for e in self.evaluations]
        return data


@dataclass
class ProtocolData:
    """A dataset seen through a protocol: relabelled training items and the items of every evaluation."""

    partition: ClassPartition
    train: list[Datum]
    model_items: list[Datum]  # the items whose labels define the model's classes (train images of model classes)
    evaluations: dict[str, list[Datum]]
    val: list[Datum]  # the selection split's items (Dassl's ``val``)


# ------------------------------------------------------------------------------------------------ building
def resolve_protocol_kind(cfg, trainer_kind: str = "standard") -> str:
    """``DATASET.PROTOCOL`` (``auto``: the trainer class's ``PROTOCOL``)."""
    protocol = cfg.DATASET.get("PROTOCOL", "auto")
    if protocol not in PROTOCOL_CHOICES:
        raise ConfigError(f"DATASET.PROTOCOL must be one of {PROTOCOL_CHOICES}, got '{protocol}'")
    return trainer_kind if protocol == "auto" else protocol


def resolve_val_source(cfg, trainer_kind: str = "standard") -> str:
    """``test`` or ``val``: ``auto`` is the test split for transductive trainers (the PromptKD repository's dataset
    classes pass test as val) and the json val split for the others (the CoOp, MaPLe and PromptSRC repositories)."""
    val_source = cfg.DATASET.get("VAL_SOURCE", "val")
    if val_source not in VAL_SOURCES:
        raise ConfigError(f"DATASET.VAL_SOURCE must be one of {VAL_SOURCES}, got '{val_source}'")
    if val_source == "auto":
        return "test" if resolve_protocol_kind(cfg, trainer_kind) == "transductive" else "val"
    return val_source


def trainer_protocol_kind(trainer_name: str) -> str:
    """The ``PROTOCOL`` a registered trainer class declares (``standard`` for unknown names)."""
    from dassl.engine import TRAINER_REGISTRY

    try:
        return getattr(TRAINER_REGISTRY.get(trainer_name), "PROTOCOL", "standard")
    except KeyError:
        return "standard"


def build_protocol(cfg, trainer_kind: str | None = None) -> Protocol:
    """The run's protocol from its config (``trainer_kind``: the trainer class's ``PROTOCOL``)."""
    if trainer_kind is None:
        trainer_kind = trainer_protocol_kind(cfg.TRAINER.NAME)
    kind = resolve_protocol_kind(cfg, trainer_kind)
    val_source = resolve_val_source(cfg, trainer_kind)
    rule = cfg.TEST.FINAL_MODEL
    if rule not in SELECTION_RULES:
        raise ConfigError(f"TEST.FINAL_MODEL must be one of {SELECTION_RULES}, got '{rule}'")
    subsample = cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")
    if subsample not in SUBSAMPLE_CHOICES:
        raise ConfigError(f"DATASET.SUBSAMPLE_CLASSES must be one of {SUBSAMPLE_CHOICES}, got '{subsample}'")
    main_images = cfg.TEST.get("SPLIT", "test")
    select = rule == "best_val"
    modal = ""
    evaluations: list[Evaluation] = []

    if kind == "transductive":
        modal = cfg.TRAINER.get("MODAL", "base2novel")
        if modal not in MODALS:
            raise ConfigError(f"TRAINER.MODAL must be one of {MODALS}, got '{modal}'")
    if kind == "transductive" and modal == "base2novel":
        # train on every class (labels are never used); base and novel are scored on their own class slices
        model_classes = train_classes = "all"
        parity = select and val_source == "test"
        selection_split = Evaluation("val", val_source, "base", "selection", "epoch")
        if select:
            evaluations.append(selection_split)
        evaluations.append(Evaluation("test_base", "test", "base", "base", "final", "val" if parity else None))
        evaluations.append(Evaluation("test", "test", "new", "novel", "final"))
        if select:
            evaluations.append(Evaluation("test_last", "test", "new", "novel", "last", record_as="test"))
        subsample = "all"
    else:
        model_classes = train_classes = subsample
        selection_split = Evaluation("val", val_source, subsample, "selection", "epoch")
        if select:
            evaluations.append(selection_split)
        evaluations.append(Evaluation("test", main_images, subsample, ROLE_OF_CLASSES[subsample], "final"))
        if select and kind == "transductive":  # the cross-dataset student also reports its last epoch
            evaluations.append(
                Evaluation("test_last", main_images, subsample, ROLE_OF_CLASSES[subsample], "last", record_as="test")
            )
    return Protocol(
        kind=kind, modal=modal, subsample=subsample, val_source=val_source, selection_rule=rule,
        model_classes=model_classes, train_classes=train_classes, evaluations=tuple(evaluations),
        selection_split=selection_split,
    )  # fmt: skip


def dataset_view(cfg, protocol: Protocol | None = None):
    """The dataset a run of ``cfg`` sees (Dassl's ``DatasetBase``): ``train_x`` = its training items, ``val`` = the
    selection split, ``test`` = the main test's items, ``classnames`` = the model's classes; ``evaluations`` holds
    the items of every named evaluation (e.g. ``test_base``)."""
    from dassl.data.datasets import DatasetBase, build_dataset

    protocol = protocol if protocol is not None else build_protocol(cfg)
    source = build_dataset(cfg)
    if not getattr(source, "class_subsampling", True) and cfg.DATASET.get("SUBSAMPLE_CLASSES", "all") != "all":
        print(f"Note: {type(source).__name__} is a test set: DATASET.SUBSAMPLE_CLASSES is ignored (as upstream)")
    data = protocol.apply(source)
    view = DatasetBase(train_x=data.train, val=data.val, test=data.evaluations[protocol.main])
    model = DatasetBase(train_x=data.model_items)
    view._num_classes, view._lab2cname, view._classnames = model.num_classes, model.lab2cname, model.classnames
    view.evaluations = data.evaluations
    view.protocol = protocol
    view.source = source
    return view


def parity_note(protocol: Protocol) -> str | None:
    """The log's note when the selection evaluation runs on test images."""
    selection = protocol.selection
    if selection is None or selection.images != "test":
        return None
    what = "base-class test images" if selection.classes == "base" and protocol.kind == "transductive" else "test images"
    return f"Model selection uses the {what} (upstream parity); DATASET.VAL_SOURCE val selects on the json val split"


__all__ = [
    "ClassPartition",
    "Evaluation",
    "Protocol",
    "ProtocolData",
    "base_class_count",
    "build_protocol",
    "dataset_view",
    "harmonic_mean",
    "parity_note",
    "resolve_protocol_kind",
    "resolve_val_source",
    "trainer_protocol_kind",
]
