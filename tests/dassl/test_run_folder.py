"""The run folder: lock, fingerprint, durable record, setting a used folder aside."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from dassl.config import get_cfg_default
from dassl.engine.run_folder import (
    RECORD_FILE,
    RunFolder,
    config_fingerprint,
    describe_differences,
    open_run_folder,
)
from dassl.utils.errors import RunStateError
from tests.conftest import REPO_ROOT


def _cfg(out, **overrides):
    cfg = get_cfg_default()
    cfg.OUTPUT_DIR = str(out)
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def test_fingerprint_ignores_where_things_are_and_names_what_differs(tmp_path):
    a = config_fingerprint(_cfg(tmp_path / "a", **{"DATASET.ROOT": "/x", "TRAIN.PRINT_FREQ": 5}))
    b = config_fingerprint(_cfg(tmp_path / "b", **{"DATASET.ROOT": "/y", "TRAIN.PRINT_FREQ": 50}))
    assert a == b
    c = config_fingerprint(_cfg(tmp_path / "a", **{"OPTIM.LR": 0.5, "SEED": 3}))
    assert describe_differences(a, c) == ["OPTIM.LR: 0.0003 -> 0.5", "SEED: -1 -> 3"]


def test_record_is_append_only_and_ignores_a_line_cut_by_a_kill(tmp_path):
    folder = RunFolder(str(tmp_path))
    folder.append({"split": "val", "epoch": 1, "stage": "epoch"})
    folder.append({"split": "val", "epoch": 2, "stage": "epoch"})
    with open(tmp_path / RECORD_FILE, "a", encoding="utf-8") as f:
        f.write('{"split": "val", "epo')  # a write that a kill interrupted
    assert [e["epoch"] for e in folder.read_record()] == [1, 2]
    kept = folder.rollback(lambda e: e["epoch"] <= 1)
    assert kept == [{"split": "val", "epoch": 1, "stage": "epoch"}]
    assert (tmp_path / RECORD_FILE).read_text().count("\n") == 1


def test_a_second_run_in_a_locked_folder_is_refused(tmp_path):
    first = RunFolder(str(tmp_path))
    first.acquire()
    try:
        with pytest.raises(RunStateError, match=r"in use by another run \(pid \d+"):
            RunFolder(str(tmp_path)).acquire()
    finally:
        first.release()
    assert not (tmp_path / ".lock").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path, capsys):
    # a process that takes the lock and dies without releasing it (SIGKILL)
    code = textwrap.dedent(f"""
        import os, signal
        from dassl.engine.run_folder import RunFolder
        RunFolder({str(tmp_path)!r}).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT)
    assert proc.returncode == -9
    assert (tmp_path / ".lock").read_text().startswith("pid ")
    folder = RunFolder(str(tmp_path))
    folder.acquire()
    folder.release()
    assert "taking over the lock of a run that ended without releasing it (pid" in capsys.readouterr().out


def test_open_refuses_another_config_and_force_keeps_the_old_folder(tmp_path, capsys):
    out = tmp_path / "run"
    folder, finished = open_run_folder(_cfg(out, **{"OPTIM.LR": 0.1}))
    folder.append({"split": "val", "epoch": 1, "stage": "epoch"})
    folder.release()
    assert not finished
    with pytest.raises(RunStateError) as err:
        open_run_folder(_cfg(out, **{"OPTIM.LR": 0.2}))
    assert "OPTIM.LR: 0.1 -> 0.2" in str(err.value) and "another --output-dir" in str(err.value)
    assert "FORCE=1" in str(err.value)
    folder, _ = open_run_folder(_cfg(out, **{"OPTIM.LR": 0.2}), force=True)
    folder.release()
    (old,) = tmp_path.glob("run.old-*")
    assert json.loads((old / "run.json").read_text())["fingerprint"]["OPTIM.LR"] == 0.1
    assert (old / RECORD_FILE).is_file() and not (out / RECORD_FILE).exists()
    assert json.loads((out / "run.json").read_text())["fingerprint"]["OPTIM.LR"] == 0.2
    assert f"kept as {old}" in capsys.readouterr().out


def test_finished_means_the_final_evaluation_is_in_results_json_too(tmp_path):
    folder = RunFolder(str(tmp_path))
    final = {"split": "test", "epoch": 1, "stage": "after_train", "final": True}
    folder.append(final)
    assert not folder.is_finished()  # killed before results.json was written from the record
    (tmp_path / "results.json").write_text(json.dumps({"evaluations": [final]}))
    assert folder.is_finished()
    (tmp_path / "results.json").write_text("{trunc")
    assert not folder.is_finished()


def test_stale_temp_files_are_removed(tmp_path):
    (tmp_path / "prompt_learner").mkdir()
    stale = [tmp_path / ".results.json.abc.tmp", tmp_path / "prompt_learner" / ".model-last.pth.tar.x1.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    (tmp_path / "prompt_learner" / "model-last.pth.tar").write_bytes(b"keep")
    assert RunFolder(str(tmp_path)).remove_stale_temp_files() == sorted(str(p) for p in stale)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["model-last.pth.tar"]


def test_a_plugin_node_on_one_side_only_is_not_a_difference_for_another_trainer():
    """A method registered by a plugin in one process and not in the other (``--plugin``, ``PROMPTKD_PLUGINS``) adds
    its own node to the config; the run's trainer cannot have read it, so a restart without the plugin is accepted.
    Everything else that differs is still named."""
    import trainers  # noqa: F401  (registers CoOp)

    coop = {"TRAINER.NAME": "CoOp", "TRAINER.COOP.N_CTX": 16, "OPTIM.LR": 0.002}
    with_plugin = {**coop, "TRAINER.MYMETHOD.ALPHA": 0.5, "TRAINER.MYMETHOD.PREC": "fp32"}
    assert describe_differences(with_plugin, coop) == []
    assert describe_differences(coop, with_plugin) == []
    # the run's own node, a value that changed in another node, and top-level keys are all still differences
    assert describe_differences(coop, {"TRAINER.NAME": "CoOp", "OPTIM.LR": 0.002}) == ["TRAINER.COOP.N_CTX: 16 -> (absent)"]
    assert describe_differences(with_plugin, {**with_plugin, "TRAINER.MYMETHOD.ALPHA": 0.7}) == [
        "TRAINER.MYMETHOD.ALPHA: 0.5 -> 0.7"
    ]
    assert describe_differences(coop, {**coop, "TRAINER.MODAL": "cross"}) == ["TRAINER.MODAL: (absent) -> 'cross'"]
    # a run of the plugin's own method: its node is its own, so losing it is a difference
    own = {"TRAINER.NAME": "MyMethod", "TRAINER.MYMETHOD.ALPHA": 0.5}
    assert describe_differences(own, {"TRAINER.NAME": "MyMethod"}) == ["TRAINER.MYMETHOD.ALPHA: 0.5 -> (absent)"]
