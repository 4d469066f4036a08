"""``results.json``: the machine-readable record of a run, versioned, validated when written and when read.

The file is derived from the run's evaluation record (``evaluations.jsonl``) and its protocol
(``dassl/evaluation/protocol.py``) alone; ``tools/parse_results.py``, the sweep, the plots and the demo read every
number they need from it. docs/architecture.md describes the fields; ``SCHEMA_VERSION`` 2 in short:

* run identity: ``trainer``, ``dataset``, ``seed``, ``num_shots``, ``subsample_classes``, ``backbone``,
  ``final_model``, ``config_hash``, ``experiment`` (``name``: what the tables group by, ``config_id``: the hash of
  the result-determining config without dataset, seed and class subset);
* ``protocol``: the protocol object as data (kind, modal, selection, every named evaluation);
* ``evaluations``: the record (one entry per evaluation: split, epoch, stage, final, accuracy, ...);
* ``finished`` and ``final``: the deployed model's headline evaluation;
* the summary: ``accuracy`` / ``base`` / ``novel`` (each ``{"accuracy", "epoch", "evaluation"}``), ``hm`` when base
  and novel are both there, ``*_last`` for the last-epoch model next to a selected one, ``selection``.

Version-1 files (written before the schema was versioned) are read by ``upgrade_v1``.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from dassl.utils.errors import UserError

from .protocol import ROLES, Protocol, harmonic_mean

SCHEMA_VERSION = 2
SUMMARY_ROLES = ("accuracy", "base", "novel")
REQUIRED = {
    "schema_version": int,
    "trainer": str,
    "dataset": str,
    "seed": int,
    "num_shots": int,
    "subsample_classes": str,
    "final_model": str,
    "experiment": dict,
    "protocol": dict,
    "evaluations": list,
    "finished": bool,
}
ENTRY_REQUIRED = {"split": str, "stage": str, "final": bool}
# config keys that name the data a run is evaluated on rather than how the method was trained: runs that differ
# only in these belong to one experiment (a base training and its novel evaluation, the seeds, the datasets)
NON_EXPERIMENT_KEYS = ("SEED", "DATASET.NAME", "DATASET.SUBSAMPLE_CLASSES", "EXPERIMENT")


class ResultsError(UserError, ValueError):
    """A results.json that this version cannot read (truncated, edited, or from an unknown schema)."""


def experiment_config_id(fingerprint: dict) -> str:
    """The hash of a run's result-determining config without the keys that only pick its data."""
    kept = {k: v for k, v in fingerprint.items() if k not in NON_EXPERIMENT_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:12]


def _brief(entry: dict) -> dict:
    return {"accuracy": entry.get("accuracy"), "epoch": entry.get("epoch"), "evaluation": entry.get("split")}


def summarize(protocol: Protocol, record: list[dict]) -> dict:
    """The summary fields of results.json from the record: the deployed model's base / novel / accuracy, HM, the
    last-epoch numbers next to a selected model, and the selection."""
    finals = [e for e in record if e.get("final")]
    summary: dict[str, Any] = {}
    selection = protocol.selection
    main = [e for e in finals if e.get("split") == protocol.main]
    deployed_epoch = main[-1].get("epoch") if main else (finals[-1].get("epoch") if finals else None)
    selected = []
    if selection is not None:
        selected = [e for e in record if e.get("split") == selection.name and e.get("stage") == "epoch"]
    at_deployed = [e for e in selected if e.get("epoch") == deployed_epoch]

    for evaluation in protocol.finals:
        entries = [e for e in finals if e.get("split") == evaluation.name]
        if not entries and evaluation.same_as and finals:
            entries = at_deployed  # parity: the selection evaluation of the deployed epoch is this number
        if entries:
            summary[evaluation.role] = _brief(entries[-1])
        if evaluation.same_as and selected:
            summary[f"{evaluation.role}_last"] = _brief(selected[-1])
    for evaluation in protocol.last_epoch:
        entries = [e for e in record if e.get("split") == evaluation.split and e.get("stage") == "after_train"
                   and not e.get("final")]  # fmt: skip
        if entries:
            summary[f"{evaluation.role}_last"] = _brief(entries[-1])
    if "base" in summary and "novel" in summary:
        summary["hm"] = harmonic_mean(summary["base"]["accuracy"], summary["novel"]["accuracy"])
    summary["selection"] = {
        "rule": protocol.selection_rule,
        "split": "json val split" if protocol.val_source == "val" else "test split (upstream parity)",
        "evaluation": selection.name if selection else None,
    }
    if selection is not None and at_deployed and finals:
        summary["selection"]["accuracy"] = at_deployed[-1].get("accuracy")
        summary["selection"]["epoch"] = deployed_epoch
    return summary


def results_problems(data: Any) -> list[str]:
    """What keeps ``data`` from being a results.json of ``SCHEMA_VERSION`` (empty when it is one)."""
    if not isinstance(data, dict):
        return [f"expected a json object, found a {type(data).__name__}"]
    problems = []
    for key, kind in REQUIRED.items():
        if key not in data:
            problems.append(f"lacks '{key}'")
        elif not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            problems.append(f"'{key}' is a {type(data[key]).__name__}, expected {kind.__name__}")
    if problems:
        return problems
    if data["schema_version"] != SCHEMA_VERSION:
        return [f"schema_version {data['schema_version']} (this version reads {SCHEMA_VERSION})"]
    for index, entry in enumerate(data["evaluations"]):
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in ENTRY_REQUIRED.items()):
            problems.append(f"evaluations[{index}] lacks one of {sorted(ENTRY_REQUIRED)}: {json.dumps(entry)[:80]}")
    for role in (*SUMMARY_ROLES, *(f"{r}_last" for r in SUMMARY_ROLES)):
        value = data.get(role)
        if value is not None and not (isinstance(value, dict) and isinstance(value.get("accuracy"), (int, float))):
            problems.append(f"'{role}' must be {{\"accuracy\": number, \"epoch\": ..., \"evaluation\": ...}}")
    if data["finished"] and not isinstance(data.get("final"), dict):
        problems.append("'finished' is true but there is no 'final' evaluation")
    if "hm" in data and not isinstance(data["hm"], (int, float)):
        problems.append("'hm' must be a number")
    return problems


def check_results(data: dict, where: str) -> dict:
    """``data`` if it is a valid results.json, else ``ResultsError`` naming ``where`` and the problems."""
    problems = results_problems(data)
    if problems:
        listed = "; ".join(problems[:5])
        raise ResultsError(
            f"{where}: not a valid results.json of schema {SCHEMA_VERSION} ({listed}). Truncated by a crash or "
            "edited? Run the same command again to rewrite it from the run's evaluations.jsonl."
        )
    return data


def upgrade_v1(data: dict) -> dict:
    """A results.json written before ``schema_version`` existed, in the version-2 shape (the numbers as they are)."""
    if not isinstance(data, dict) or "evaluations" not in data:
        return data
    upgraded = dict(data)
    upgraded["schema_version"] = SCHEMA_VERSION
    entries = []
    for entry in data["evaluations"] if isinstance(data["evaluations"], list) else []:
        if isinstance(entry, dict):
            final = entry.get("final", entry == data.get("final"))
            stage = "after_train" if final else ("epoch" if entry.get("split") == "val" else "eval")
            entry = {"final": bool(final), "stage": stage, **entry}
        entries.append(entry)
    upgraded["evaluations"] = entries
    upgraded.setdefault("finished", "final" in data)
    subsample = str(data.get("subsample_classes", "all"))
    upgraded.setdefault("subsample_classes", subsample)
    upgraded.setdefault("num_shots", -1)
    upgraded.setdefault("final_model", "")
    if not isinstance(upgraded.get("seed"), int):
        upgraded["seed"] = -1
    modal = data.get("modal", "")
    kind = "transductive" if modal else "standard"
    upgraded.setdefault("protocol", {"kind": kind, "modal": modal, "upgraded_from": 1})
    upgraded.setdefault("experiment", {"name": str(data.get("trainer", "")), "config_id": ""})
    final = data.get("final")
    if isinstance(final, dict) and modal != "base2novel":
        role = {"base": "base", "new": "novel"}.get(subsample, "accuracy")
        upgraded.setdefault(role, _brief(final))
    for role in ("base", "novel", "accuracy", "base_last", "novel_last"):
        if isinstance(upgraded.get(role), dict):
            upgraded[role] = {"evaluation": None, **upgraded[role]}
    return upgraded


def read_results(path: str | os.PathLike) -> dict:
    """A run's results.json, validated (version-1 files upgraded); ``ResultsError`` when it cannot be used."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(
            f"{path}: not a results.json written by this toolkit ({type(err).__name__}: {err}); truncated by a crash, "
            "or edited? Rerun the run (same command) to rewrite it"
        ) from err
    if isinstance(data, dict) and "schema_version" not in data:
        data = upgrade_v1(data)
    return check_results(data, path)


__all__ = [
    "ROLES",
    "SCHEMA_VERSION",
    "ResultsError",
    "check_results",
    "experiment_config_id",
    "read_results",
    "results_problems",
    "summarize",
    "upgrade_v1",
]
