"""Collect the results under an output root into per-dataset tables: base / novel / HM per seed, mean ± std.

    python tools/parse_results.py output/base2new                    # terminal tables
    python tools/parse_results.py output --format markdown --compare paper
    python tools/parse_results.py output --format csv > results.csv   # or json

Every run folder is read from its ``results.json`` (written by every run of this toolkit, schema in
``dassl/evaluation/results.py``): what was run (trainer, dataset, seed, shots, experiment name), the protocol and
the numbers (base / novel / accuracy of the deployed model, with its selection rule and epoch) are all in there.
Runs are grouped into experiments (the recorded experiment name + shots + protocol), each experiment into datasets
and seeds:

* base-to-novel: a PromptKD run holds both numbers; for the other methods the base number comes from the run
  trained on the base classes (or an evaluation of it on them) and the novel number from its evaluation on the
  novel classes;
  HM = 2·B·N/(B+N) per seed; the dataset row gives the mean ± std over seeds (``np.std``, as upstream's
  ``parse_test_res.py``; ``--ci95`` for 1.96·std/√n) and the HM of the averaged base and novel, as the papers do;
  the average row gives the HM of the averaged base and novel (the papers' "Average") and, labelled, the mean of
  the per-dataset HMs;
* cross-dataset, domain generalisation and few-shot runs: one accuracy per seed.

Each number says which model it comes from (the selection rule and epoch) and missing or unfinished runs are
listed. Runs of the upstream code, which only have ``log.txt``, are imported from the log (the ``* accuracy: X%``
blocks, the config dump and the per-epoch ``Evaluate on the *val* set`` results) and grouped by their folders
(``train_base/``, ``test_new/``, ``seed1``), as are results.json files written before the schema was versioned. ``--compare paper`` adds the published numbers (PromptKD paper, Tables 1, 2, 9, 10) and the difference.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tabulate import tabulate  # noqa: E402

from dassl.evaluation.protocol import harmonic_mean  # noqa: E402
from dassl.evaluation.results import read_results  # noqa: E402
from tools import paper_numbers  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PHASES = ("train_base", "test_base", "test_new")
BASE_PHASES = ("test_base", "train_base")  # preferred first
SEED_DIR = re.compile(r"^seed_?(\d+)$")
ACCURACY_LINE = re.compile(r"\* accuracy: ([\d.eE+-]+)%")
EPOCH_LINE = re.compile(r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\]")
LOSS_ITEM = re.compile(r"(\w+) (-?[\d.eE+-]+|nan|inf) \((-?[\d.eE+-]+|nan|inf)\)")
FORMATS = ("table", "markdown", "csv", "json")


def known_trainers() -> set[str]:
    """Every registered trainer's name (a log of the upstream code names its trainer in its folder path)."""
    import trainers  # noqa: F401  (registers the trainers)
    from dassl.engine import TRAINER_REGISTRY

    return set(TRAINER_REGISTRY.registered_names())


def dataset_names(configs: Path = REPO_ROOT / "configs" / "datasets") -> dict[str, str]:
    """``{file stem or DATASET.NAME: DATASET.NAME}`` for every dataset config (``caltech101`` -> ``Caltech101``)."""
    names: dict[str, str] = {}
    for path in sorted(configs.glob("*.yaml")):
        match = re.search(r"^\s+NAME:\s*\"?([^\"\n]+)\"?\s*$", path.read_text(encoding="utf-8"), flags=re.M)
        if match:
            names[path.stem] = names[match.group(1)] = match.group(1)
    return names


# ----------------------------------------------------------------------------------------------------- logs
@dataclass
class LogSummary:
    """What an upstream-style ``log.txt`` says about its run."""

    config: dict[str, str]
    val: list[tuple[int, float]]  # (epoch, accuracy) of every "Evaluate on the *val* set"
    final: float | None  # the accuracy of the final test (after "Finish training", or of an eval-only run)
    finished: bool
    epoch: tuple[int, int] | None  # the last (epoch, max_epoch) seen in the progress lines
    # per epoch, the running average of every logged training meter: losses, and "acc" for trainers that log it
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def read_logs(run_dir: Path) -> str:
    """``log.txt`` followed by the logs of resumed runs (``log.txt-<timestamp>``, chronological)."""
    paths = sorted(run_dir.glob("log.txt*"), key=lambda p: (p.name != "log.txt", p.name))
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in paths)


def config_from_log(text: str) -> dict[str, str]:
    """Flat ``{"TRAINER.NAME": "PromptKD", ...}`` from the ``** Config **`` dump that train.py prints."""
    start = text.find("** Config **")
    if start < 0:
        return {}
    config: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in text[start:].splitlines()[2:]:
        if not line.strip():
            continue
        if line.startswith("Collecting env info") or line.startswith("*"):
            break
        match = re.match(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):\s?(.*)$", line)
        if not match:
            continue
        indent, key, value = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if value:
            config[".".join([k for _, k in stack] + [key])] = value.strip("'\"")
        else:
            stack.append((indent, key))
    return config


def parse_log(text: str) -> LogSummary:
    """Accuracies, progress and per-epoch losses of one run, from its log text."""
    val: list[tuple[int, float]] = []
    losses: dict[str, list[tuple[int, float]]] = {}
    epoch: tuple[int, int] | None = None
    pending_split: str | None = None
    finished = after_training = False
    final: float | None = None
    last_accuracy: float | None = None
    for line in text.splitlines():
        progress = EPOCH_LINE.match(line)
        if progress:
            epoch = (int(progress.group(1)), int(progress.group(2)))
            for name, _value, average in LOSS_ITEM.findall(line[progress.end() :]):
                if name in ("time", "data", "lr", "eta"):
                    continue
                series = losses.setdefault(name, [])
                if series and series[-1][0] == epoch[0]:
                    series.pop()
                series.append((epoch[0], float(average)))
            continue
        if line.startswith("Evaluate on the *"):
            pending_split = line.split("*")[1]
            continue
        if line.startswith("Finish training"):
            finished = after_training = True
            continue
        match = ACCURACY_LINE.search(line)
        if match:
            accuracy = float(match.group(1))
            last_accuracy = accuracy
            if after_training:
                final = accuracy
            elif pending_split == "val":
                val.append((epoch[0] if epoch else len(val) + 1, accuracy))
            pending_split = None
    if epoch is None and not val and last_accuracy is not None:  # an eval-only run
        final, finished = last_accuracy, True
    return LogSummary(config_from_log(text), val, final, finished, epoch, losses)


# ----------------------------------------------------------------------------------------------------- runs
@dataclass
class Run:
    """One run folder, reduced to what the tables need."""

    path: Path
    trainer: str
    dataset: str
    seed: int | None
    backbone: str
    subsample: str  # all | base | new
    modal: str  # base2novel | cross | "" (not a PromptKD run)
    source: str  # results.json | log.txt
    finished: bool
    base: float | None = None
    novel: float | None = None
    accuracy: float | None = None
    epoch: int | None = None
    selection: str = ""
    progress: str = ""  # "epoch 3/20" for an unfinished run
    experiment: str | None = None  # the recorded experiment name (None: imported, grouped by its folders)
    num_shots: int | None = None


def _selection(rule: str, epoch: int | None, split: str | None = None) -> str:
    """Which model a number comes from, short: ``best on test (ep 7)``, ``last (ep 20)``, ``eval only``."""
    at = "" if epoch is None else f" (ep {epoch})"
    if rule == "best_val":
        where = {"json val split": "val", "test split (upstream parity)": "test"}.get(split or "", "val")
        return f"best on {where}{at}"
    if rule == "last_step":
        return f"last{at}"
    return rule or "eval only"


def _from_results_json(run_dir: Path, data: dict) -> Run:
    """A run from its (validated) results.json: every field is read, nothing inferred from the folder."""
    seed = data["seed"]
    protocol = data["protocol"]
    recorded = "upgraded_from" not in protocol
    run = Run(
        path=run_dir,
        trainer=data["trainer"],
        dataset=data["dataset"],
        seed=seed if seed >= 0 else None,
        backbone=str(data.get("backbone", "")),
        subsample=data["subsample_classes"],
        modal=str(protocol.get("modal") or data.get("modal") or ""),
        source="results.json",
        finished=data["finished"],
        experiment=data["experiment"]["name"] if recorded else None,
        num_shots=data["num_shots"],
    )
    selection = data.get("selection") or {}
    rule, split = str(selection.get("rule") or data["final_model"]), selection.get("split")
    if run.finished:
        run.base = (data.get("base") or {}).get("accuracy")
        run.novel = (data.get("novel") or {}).get("accuracy")
        run.accuracy = (data.get("accuracy") or {}).get("accuracy")
        headline = data.get("novel") or data.get("accuracy") or data.get("base") or data["final"]
        run.epoch = headline.get("epoch")
        evaluated_only = run.epoch is None and not any(e.get("stage") == "epoch" for e in data["evaluations"])
        run.selection = "eval only" if evaluated_only else _selection(rule, run.epoch, split)
        if run.modal == "base2novel" and (run.base is None or run.novel is None):
            run.base = run.novel = None  # a student without both numbers is not a base-to-novel result
    else:
        epochs = [e["epoch"] for e in data["evaluations"] if e.get("epoch")]
        run.progress = f"evaluated up to epoch {max(epochs)}" if epochs else "started"
    return run


def _from_log(run_dir: Path, names: dict[str, str]) -> Run:
    summary = parse_log(read_logs(run_dir))
    config = summary.config
    dataset = config.get("DATASET.NAME") or next((names[p] for p in run_dir.parts[::-1] if p in names), "")
    trainer = config.get("TRAINER.NAME") or next((p for p in run_dir.parts[::-1] if p in known_trainers()), "")
    seed = config.get("SEED", "")
    seed_match = SEED_DIR.match(run_dir.name)
    run = Run(
        path=run_dir,
        trainer=trainer,
        dataset=dataset,
        seed=int(seed) if seed.lstrip("-").isdigit() and int(seed) >= 0 else (
            int(seed_match.group(1)) if seed_match else None),
        backbone=config.get("MODEL.BACKBONE.NAME", ""),
        subsample=config.get("DATASET.SUBSAMPLE_CLASSES", "all"),
        modal=config.get("TRAINER.MODAL", "") if trainer == "PromptKD" else "",
        source="log.txt",
        finished=summary.finished and summary.final is not None,
    )  # fmt: skip
    rule = config.get("TEST.FINAL_MODEL", "best_val" if summary.val else "last_step")
    if run.modal == "base2novel":
        if run.finished and summary.val:
            best = max(summary.val, key=lambda item: item[1])  # first maximum: Dassl saves on a strict improvement
            run.base, run.novel, run.epoch = best[1], summary.final, best[0]
            run.selection = _selection(rule, run.epoch, "test split (upstream parity)")
    elif run.finished:
        run.selection = "eval only" if summary.epoch is None else _selection(rule, None)
        if run.subsample == "base":
            run.base = summary.final
        elif run.subsample == "new":
            run.novel = summary.final
        else:
            run.accuracy = summary.final
    if not run.finished:
        run.progress = f"epoch {summary.epoch[0]}/{summary.epoch[1]}" if summary.epoch else "started"
    return run


def read_run(run_dir: Path, names: dict[str, str] | None = None) -> Run:
    """The run in ``run_dir`` from its ``results.json``, or from ``log.txt`` for runs of the upstream code."""
    results = run_dir / "results.json"
    if results.is_file():
        return _from_results_json(run_dir, read_results(results))  # ResultsError (a ValueError) names the file
    return _from_log(run_dir, names if names is not None else dataset_names())


def find_run_dirs(root: Path) -> list[Path]:
    """Every folder under ``root`` (itself included) that holds a ``results.json`` or a ``log.txt``."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != "tensorboard")
        if "results.json" in files or any(f == "log.txt" or f.startswith("log.txt-") for f in files):
            found.append(Path(directory))
    return sorted(found)


# ------------------------------------------------------------------------------------------------ grouping
@dataclass
class SeedResult:
    seed: int | None
    base: float | None = None
    novel: float | None = None
    accuracy: float | None = None
    epoch: int | None = None
    selection: str = ""
    source: str = ""
    paths: list[str] = field(default_factory=list)

    @property
    def hm(self) -> float | None:
        if self.base is None or self.novel is None:
            return None
        return harmonic_mean(self.base, self.novel)


@dataclass
class Stat:
    mean: float
    std: float
    ci95: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat | None:
        if not values:
            return None
        array = np.asarray(values, dtype=np.float64)
        std = float(array.std())  # population std, as upstream parse_test_res.py
        return cls(float(array.mean()), std, 1.96 * std / math.sqrt(len(array)), len(array))


@dataclass
class DatasetResult:
    dataset: str
    seeds: list[SeedResult]
    missing: list[str] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [getattr(s, key) for s in self.seeds if getattr(s, key) is not None]

    @property
    def complete_seeds(self) -> list[SeedResult]:
        return [s for s in self.seeds if s.hm is not None or s.accuracy is not None]

    def stat(self, key: str) -> Stat | None:
        return Stat.of(self.values(key))

    @property
    def hm(self) -> float | None:
        """The HM of the seed-averaged base and novel accuracy (how the papers fill their tables)."""
        base, novel = self.stat("base"), self.stat("novel")
        return None if base is None or novel is None else harmonic_mean(base.mean, novel.mean)


@dataclass
class Experiment:
    """Runs of one method + config + protocol, over datasets and seeds."""

    name: str  # the output path with the dataset, seed and base/novel phase folders taken out
    protocol: str  # base2novel | accuracy
    trainer: str
    backbone: str
    datasets: list[DatasetResult]
    unfinished: list[str] = field(default_factory=list)

    @property
    def paper_method(self) -> str | None:
        return paper_numbers.paper_method(self.trainer, self.backbone)

    def average(self) -> dict | None:
        """Average over datasets (of the per-dataset means); None when fewer than two datasets have results."""
        if self.protocol == "base2novel":
            rows = [d for d in self.datasets if d.hm is not None]
            if len(rows) < 2:
                return None
            base = float(np.mean([d.stat("base").mean for d in rows]))
            novel = float(np.mean([d.stat("novel").mean for d in rows]))
            return {
                "datasets": [d.dataset for d in rows],
                "base": base,
                "novel": novel,
                "hm": harmonic_mean(base, novel),
                "mean_of_dataset_hms": float(np.mean([d.hm for d in rows])),
            }
        rows = [d for d in self.datasets if d.stat("accuracy") is not None]
        if len(rows) < 2:
            return None
        return {"datasets": [d.dataset for d in rows], "accuracy": float(np.mean([d.stat("accuracy").mean for d in rows]))}

    def paper(self, dataset: str) -> tuple[float, ...] | None:
        """The published (base, novel, HM) or (accuracy,) for ``dataset``, if the paper has this method there."""
        method = self.paper_method
        if method is None:
            return None
        if self.protocol == "base2novel":
            return paper_numbers.BASE_TO_NOVEL.get(method, {}).get(dataset)
        value = paper_numbers.ACCURACY.get(method, {}).get(dataset)
        return None if value is None else (value,)

    def paper_average(self, datasets: list[str]) -> tuple[float, ...] | None:
        """The paper's numbers averaged over the same datasets (the paper's Average row when all are present)."""
        cells = [self.paper(d) for d in datasets]
        if not cells or any(c is None for c in cells):
            return None
        if self.protocol == "base2novel":
            base, novel = float(np.mean([c[0] for c in cells])), float(np.mean([c[1] for c in cells]))
            return base, novel, harmonic_mean(base, novel)
        return (float(np.mean([c[0] for c in cells])),)


def _dataset_order(name: str) -> tuple[int, str]:
    order = paper_numbers.BASE_TO_NOVEL_DATASETS + paper_numbers.DOMAIN_GENERALISATION_TARGETS
    return (order.index(name), name) if name in order else (len(order), name)


def _experiment_key(run: Run, root: Path, names: dict[str, str]) -> tuple[str, str | None]:
    """(experiment name, phase): the relative path without seed, dataset and base/novel phase folders."""
    parts = list(run.path.relative_to(root).parts) if run.path != root else [run.path.name]
    phase = next((p for p in parts if p in PHASES), None)
    kept = []
    dataset_removed = False
    for part in parts:
        if SEED_DIR.match(part) or part in PHASES:
            continue
        if not dataset_removed and names.get(part, part) == run.dataset and run.dataset:
            dataset_removed = True
            continue
        kept.append(part)
    return "/".join(kept) or root.name, phase


def collect(root: Path | str, seeds: list[int] | None = None, unreadable: list[str] | None = None) -> list[Experiment]:
    """Read every run under ``root`` and group the runs into experiments, datasets and seeds.

    ``seeds``: the seeds every dataset should have (default: every seed seen in the experiment); the others
    are reported as missing. A run that cannot be read (a truncated ``results.json``) raises ``ValueError``,
    unless ``unreadable`` is a list: then ``"<path>: <reason>"`` is appended to it and the rest is collected.
    """
    root = Path(root).resolve()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such output folder (the --output-dir / OUTPUT of the runs)")
    names = dataset_names()
    grouped: dict[tuple[str, str], list[tuple[Run, str | None]]] = {}
    for run_dir in find_run_dirs(root):
        try:
            run = read_run(run_dir, names)
        except (ValueError, OSError) as err:
            if unreadable is None:
                raise
            unreadable.append(str(err))
            continue
        if run.experiment is not None:  # recorded: the name, the shots, and no phase folders
            shots = f" [{run.num_shots}-shot]" if run.num_shots and run.num_shots > 0 else ""
            name, phase = f"{run.experiment}{shots}", None
        else:
            name, phase = _experiment_key(run, root, names)
        protocol = "base2novel" if run.modal == "base2novel" or phase or run.subsample in ("base", "new") else "accuracy"
        grouped.setdefault((name, protocol), []).append((run, phase))

    experiments = []
    for (name, protocol), runs in sorted(grouped.items()):
        by_dataset: dict[str, dict[int | None, list[tuple[Run, str | None]]]] = {}
        for run, phase in runs:
            by_dataset.setdefault(run.dataset, {}).setdefault(run.seed, []).append((run, phase))
        expected = set(seeds) if seeds else {s for d in by_dataset.values() for s in d if s is not None}
        datasets, unfinished = [], []
        for dataset in sorted(by_dataset, key=_dataset_order):
            result = DatasetResult(dataset, [])
            for seed in sorted(by_dataset[dataset], key=lambda s: -1 if s is None else s):
                entry = _merge_seed(seed, by_dataset[dataset][seed], root)
                result.seeds.append(entry)
                for run, _ in by_dataset[dataset][seed]:
                    if not run.finished:
                        unfinished.append(f"{run.path.relative_to(root)} ({run.progress})")
                label = "" if seed is None else f"seed {seed}: "
                if protocol == "base2novel" and entry.base is None and any(r.finished for r, _ in by_dataset[dataset][seed]):
                    result.missing.append(f"{label}base accuracy (no finished train_base/ or test_base/ run)")
                if protocol == "base2novel" and entry.novel is None and entry.base is not None:
                    result.missing.append(f"{label}novel accuracy (no finished test_new/ run)")
            present = {s for s in by_dataset[dataset] if s is not None}
            if None not in by_dataset[dataset]:  # runs without a seed (zero-shot) miss no seed
                result.missing.extend(f"seed {s}" for s in sorted(expected - present))
            datasets.append(result)
        described = [run for run, _ in runs if run.trainer] or [runs[0][0]]  # a killed log may lack its config
        first = described[0]
        experiments.append(Experiment(name, protocol, first.trainer, first.backbone, datasets, sorted(unfinished)))
    return experiments


def _merge_seed(seed: int | None, runs: list[tuple[Run, str | None]], root: Path) -> SeedResult:
    """One seed of one dataset: a single run, or base from train_base/test_base and novel from test_new."""
    entry = SeedResult(seed)
    finished = [(r, p) for r, p in runs if r.finished]
    for run, _ in sorted(finished, key=lambda rp: BASE_PHASES.index(rp[1]) if rp[1] in BASE_PHASES else -1):
        if run.base is not None and entry.base is None:
            entry.base, entry.epoch, entry.selection = run.base, run.epoch, run.selection
        if run.novel is not None and entry.novel is None:
            entry.novel = run.novel
            if run.modal == "base2novel" or entry.base is None:
                entry.epoch, entry.selection = run.epoch, run.selection
        if run.accuracy is not None and entry.accuracy is None:
            entry.accuracy, entry.epoch, entry.selection = run.accuracy, run.epoch, run.selection
    entry.source = "+".join(sorted({r.source for r, _ in finished}))
    entry.paths = sorted(str(r.path.relative_to(root)) for r, _ in runs)
    return entry


# ------------------------------------------------------------------------------------------------ rendering
def _fmt(stat: Stat | None, spread: str) -> str:
    if stat is None:
        return "-"
    if stat.n == 1:
        return f"{stat.mean:.2f}"
    return f"{stat.mean:.2f} ± {getattr(stat, spread):.2f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _delta(ours: tuple[float | None, ...], paper: tuple[float, ...] | None) -> tuple[str, str]:
    if paper is None:
        return "-", "-"
    shown = "/".join(f"{v:.2f}" for v in paper)
    diffs = "/".join("-" if o is None else f"{o - p:+.2f}" for o, p in zip(ours, paper))
    return shown, diffs


def table_rows(experiment: Experiment, spread: str = "std", per_seed: bool = True, compare: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one experiment's table (strings, ready for tabulate / markdown / csv)."""
    b2n = experiment.protocol == "base2novel"
    values = ["base", "novel", "HM"] if b2n else ["accuracy"]
    headers = ["dataset", "seed", *values, "model (selection)", "source"]
    if compare:
        headers += ["paper", "Δ (ours − paper)"]
    rows = []
    for result in experiment.datasets:
        if per_seed:
            for s in result.seeds:
                cells = [_num(s.base), _num(s.novel), _num(s.hm)] if b2n else [_num(s.accuracy)]
                row = [result.dataset, "-" if s.seed is None else str(s.seed), *cells, s.selection or "-", s.source or "-"]
                rows.append(row + (["", ""] if compare else []))
        n = len(result.complete_seeds)
        if b2n:
            hm_stat = result.stat("hm")
            hm_cell = "-" if result.hm is None else (
                f"{result.hm:.2f}" if n <= 1 else f"{result.hm:.2f} ± {getattr(hm_stat, spread):.2f}")
            cells = [_fmt(result.stat("base"), spread), _fmt(result.stat("novel"), spread), hm_cell]
            ours = (
                result.stat("base").mean if result.stat("base") else None,
                result.stat("novel").mean if result.stat("novel") else None,
                result.hm,
            )
        else:
            cells = [_fmt(result.stat("accuracy"), spread)]
            ours = (result.stat("accuracy").mean if result.stat("accuracy") else None,)
        label = f"mean ± {spread} ({n})" if spread == "std" else f"mean ± 95% CI ({n})"
        row = [result.dataset, label, *cells, "", ""]
        if compare:
            row += list(_delta(ours, experiment.paper(result.dataset)))
        rows.append(row)
    average = experiment.average()
    if average:
        count = len(average["datasets"])
        if b2n:
            paper = experiment.paper_average(average["datasets"])
            rows.append([f"Average ({count} datasets)", "HM of means", _num(average["base"]), _num(average["novel"]),
                         _num(average["hm"]), "", ""] + (list(_delta((average["base"], average["novel"], average["hm"]), paper)) if compare else []))  # fmt: skip
            rows.append([f"Average ({count} datasets)", "mean of HMs", "", "", _num(average["mean_of_dataset_hms"]),
                         "", ""] + (["", ""] if compare else []))  # fmt: skip
        else:
            paper = experiment.paper_average(average["datasets"])
            rows.append([f"Average ({count} datasets)", "", _num(average["accuracy"]), "", ""]
                        + (list(_delta((average["accuracy"],), paper)) if compare else []))  # fmt: skip
    return headers, rows


def experiment_title(experiment: Experiment) -> str:
    protocol = "base-to-novel" if experiment.protocol == "base2novel" else "accuracy"
    backbone = f", {experiment.backbone}" if experiment.backbone else ""
    return f"{experiment.trainer or '?'}{backbone} · {protocol} · {experiment.name}"


def experiment_notes(experiment: Experiment) -> list[str]:
    notes = []
    for result in experiment.datasets:
        notes += [f"missing: {result.dataset} {m}" for m in result.missing]
    notes += [f"unfinished: {u}" for u in experiment.unfinished]
    average = experiment.average()
    if experiment.protocol == "base2novel" and average:
        absent = [d for d in paper_numbers.BASE_TO_NOVEL_DATASETS if d not in average["datasets"]]
        if absent and any(d in paper_numbers.BASE_TO_NOVEL_DATASETS for d in average["datasets"]):
            notes.append(f"the average leaves out {len(absent)} of the 11 benchmark datasets: {', '.join(absent)}")
    return notes


def to_dict(experiment: Experiment) -> dict:
    """JSON form of one experiment (``--format json``; also what ``plot_results.py`` reads)."""

    def stat(s: Stat | None) -> dict | None:
        return None if s is None else {"mean": s.mean, "std": s.std, "ci95": s.ci95, "n": s.n}

    datasets = []
    for d in experiment.datasets:
        summary = {"dataset": d.dataset, "missing": d.missing, "seeds": []}
        for s in d.seeds:
            summary["seeds"].append({
                "seed": s.seed, "base": s.base, "novel": s.novel, "hm": s.hm, "accuracy": s.accuracy,
                "epoch": s.epoch, "selection": s.selection, "source": s.source, "paths": s.paths,
            })  # fmt: skip
        if experiment.protocol == "base2novel":
            summary.update(base=stat(d.stat("base")), novel=stat(d.stat("novel")), hm=d.hm, hm_of_seeds=stat(d.stat("hm")))
        else:
            summary.update(accuracy=stat(d.stat("accuracy")))
        summary["paper"] = experiment.paper(d.dataset)
        datasets.append(summary)
    average = experiment.average()
    if average:
        average["paper"] = experiment.paper_average(average["datasets"])
    return {
        "name": experiment.name,
        "title": experiment_title(experiment),
        "protocol": experiment.protocol,
        "trainer": experiment.trainer,
        "backbone": experiment.backbone,
        "paper_method": experiment.paper_method,
        "datasets": datasets,
        "average": average,
        "unfinished": experiment.unfinished,
    }


def summary_tables(experiments: list[Experiment], fmt: str = "table") -> str:
    """One table per protocol with a column per experiment, laid out like the papers' tables.

    Rows are datasets (in Table 1's order) and the average (the HM of the averaged base and novel); cells are the
    seed means, ``base/novel/HM`` or the accuracy. Columns are named by trainer (by experiment when a trainer
    appears twice).
    """
    blocks = []
    for protocol in ("base2novel", "accuracy"):
        group = [e for e in experiments if e.protocol == protocol]
        if not group:
            continue
        methods = [e.trainer + ("" if e.backbone in ("", "ViT-B/16") else f" {e.backbone}") for e in group]
        labels = [m if methods.count(m) == 1 else f"{m} ({e.name})" for m, e in zip(methods, group)]
        datasets = sorted({d.dataset for e in group for d in e.datasets}, key=_dataset_order)
        rows = []
        for dataset in datasets:
            row = [dataset]
            for e in group:
                result = next((d for d in e.datasets if d.dataset == dataset), None)
                row.append(_summary_cell(result, protocol))
            rows.append(row)
        averages = [e.average() for e in group]
        if any(averages):
            row = ["Average"]
            for average in averages:
                if not average:
                    row.append("-")
                elif protocol == "base2novel":
                    row.append(f"{average['base']:.2f}/{average['novel']:.2f}/{average['hm']:.2f} ({len(average['datasets'])})")
                else:
                    row.append(f"{average['accuracy']:.2f} ({len(average['datasets'])})")
            rows.append(row)
        what = "base/novel/HM, mean over seeds" if protocol == "base2novel" else "accuracy, mean over seeds"
        heading = f"{'###' if fmt == 'markdown' else '=='} Summary: {what}"
        table = tabulate(rows, headers=["dataset", *labels], tablefmt="github" if fmt == "markdown" else "simple",
                         disable_numparse=True)  # fmt: skip
        note = "\n\nAverage: over the datasets the column has (count in brackets); HM of the averaged base and novel."
        blocks.append(f"{heading}\n\n{table}" + (note if any(averages) else ""))
    return "\n\n".join(blocks) + "\n"


def _summary_cell(result: DatasetResult | None, protocol: str) -> str:
    if result is None:
        return "-"
    if protocol == "base2novel":
        base, novel = result.stat("base"), result.stat("novel")
        if base is None or novel is None:
            return "-"
        return f"{base.mean:.2f}/{novel.mean:.2f}/{result.hm:.2f}"
    accuracy = result.stat("accuracy")
    return "-" if accuracy is None else f"{accuracy.mean:.2f}"


def render(experiments: list[Experiment], fmt: str = "table", spread: str = "std", per_seed: bool = True,
           compare: bool = False, summary: bool = False) -> str:  # fmt: skip
    """All experiments in one of ``FORMATS`` (``summary``: the side-by-side tables only; table / markdown)."""
    if summary and fmt in ("table", "markdown"):
        return summary_tables(experiments, fmt)
    if fmt == "json":
        return json.dumps({"experiments": [to_dict(e) for e in experiments]}, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["experiment", "protocol", "trainer", "dataset", "seed", "base", "novel", "hm", "accuracy",
                         "std_base", "std_novel", "std_hm", "std_accuracy", "n", "selection", "source"])  # fmt: skip
        for e in experiments:
            for d in e.datasets:
                for s in d.seeds:
                    writer.writerow([e.name, e.protocol, e.trainer, d.dataset, "" if s.seed is None else s.seed,
                                     *(_csv(v) for v in (s.base, s.novel, s.hm, s.accuracy)), "", "", "", "", 1,
                                     s.selection, s.source])  # fmt: skip
                stats = {k: d.stat(k) for k in ("base", "novel", "hm", "accuracy")}
                means = [_csv(stats[k].mean if stats[k] else None) for k in ("base", "novel")]
                writer.writerow([e.name, e.protocol, e.trainer, d.dataset, "mean", *means, _csv(d.hm),
                                 _csv(stats["accuracy"].mean if stats["accuracy"] else None),
                                 *(_csv(getattr(stats[k], spread) if stats[k] else None) for k in ("base", "novel", "hm", "accuracy")),
                                 len(d.complete_seeds), "", ""])  # fmt: skip
            average = e.average()
            if average:
                writer.writerow([e.name, e.protocol, e.trainer, "Average", "", _csv(average.get("base")),
                                 _csv(average.get("novel")), _csv(average.get("hm")), _csv(average.get("accuracy")),
                                 "", "", "", "", len(average["datasets"]), "HM of means", ""])  # fmt: skip
                if "mean_of_dataset_hms" in average:
                    writer.writerow([e.name, e.protocol, e.trainer, "Average", "", "", "",
                                     _csv(average["mean_of_dataset_hms"]), "", "", "", "", "",
                                     len(average["datasets"]), "mean of HMs", ""])  # fmt: skip
        return buffer.getvalue()
    blocks = []
    for e in experiments:
        headers, rows = table_rows(e, spread, per_seed, compare)
        title = experiment_title(e)
        table = tabulate(rows, headers=headers, tablefmt="github" if fmt == "markdown" else "simple",
                         disable_numparse=True)  # fmt: skip
        notes = "\n".join(f"- {n}" if fmt == "markdown" else f"  {n}" for n in experiment_notes(e))
        heading = f"### {title}" if fmt == "markdown" else f"== {title}"
        blocks.append("\n".join(part for part in (heading, "", table, notes and "\n" + notes) if part is not None))
    footer = (
        "HM: per seed 2·B·N/(B+N); per dataset the HM of the seed-averaged base and novel (± is over the per-seed "
        "HMs); 'HM of means' is the papers' Average, 'mean of HMs' the mean of the per-dataset HMs."
    )
    if any(e.protocol == "base2novel" for e in experiments):
        blocks.append(footer)
    return "\n\n".join(blocks) + "\n"


def _csv(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="output", help="output root to search (default: ./output)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--table", action="store_const", const="table", dest="format", help="same as --format table")
    parser.add_argument("--compare", choices=["paper"], help="add the published numbers and the difference")
    parser.add_argument("--ci95", action="store_true", help="show the 95%% confidence interval instead of the std")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds every dataset should have (default: all seen)")
    parser.add_argument("--mean-only", action="store_true", help="leave out the per-seed rows")
    parser.add_argument("--summary", action="store_true",
                        help="one side-by-side table per protocol: datasets × methods, base/novel/HM means")  # fmt: skip
    parser.add_argument("--output", "-o", help="also write the output to this file")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 2) on a run that cannot be read instead of listing it as a warning")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unreadable: list[str] | None = None if args.strict else []
    try:
        experiments = collect(args.root, args.seeds, unreadable)
    except (FileNotFoundError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    for problem in unreadable or []:
        print(f"Warning: unreadable run, left out: {problem} (--strict makes this an error)", file=sys.stderr)
    if not experiments:
        print(f"No runs under {Path(args.root).resolve()} (no readable results.json or log.txt found).", file=sys.stderr)
        return 1
    text = render(experiments, args.format, "ci95" if args.ci95 else "std", not args.mean_only, args.compare == "paper",
                  args.summary)  # fmt: skip
    if unreadable and args.format in ("table", "markdown"):
        bullet = "-" if args.format == "markdown" else " "
        heading = "### Unreadable runs" if args.format == "markdown" else "== Unreadable runs"
        text += f"\n{heading} (left out of the tables above)\n\n" + "".join(f"{bullet} {p}\n" for p in unreadable)
    sys.stdout.write(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
