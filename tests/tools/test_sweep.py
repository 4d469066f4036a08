"""tools/sweep.py: the plan, the dry run (with skip decisions), and a real sweep on the demo data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import demo, sweep

KD_DIR = "base2new/train_base/{dataset}/shots_0/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx/seed_{seed}"


def test_plan_runs_each_teacher_once_before_its_students():
    steps = sweep.plan(["promptkd", "coop"], "base2new", ["caltech101", "dtd"], [1, 2])
    keys = [s.key for s in steps]
    assert keys[:6] == [
        "promptsrc/base2new_train_teacher.sh caltech101",
        "promptkd/base2new_train.sh caltech101 1",
        "promptkd/base2new_train.sh caltech101 2",
        "promptsrc/base2new_train_teacher.sh dtd",
        "promptkd/base2new_train.sh dtd 1",
        "promptkd/base2new_train.sh dtd 2",
    ]
    assert keys[6:8] == ["coop/base2new_train.sh caltech101 1", "coop/base2new_test.sh caltech101 1"]
    assert len(keys) == 6 + 2 * 2 * 2
    assert steps[1].needs == steps[0].key and steps[7].needs == steps[6].key

    xd = sweep.plan(["promptkd", "maple"], "xd", ["dtd", "eurosat"], [1])
    assert [s.key for s in xd] == [
        "promptsrc/xd_train_teacher.sh",
        "promptkd/xd_train.sh dtd 1",
        "promptkd/xd_train.sh eurosat 1",
        "maple/xd_train.sh 1",
        "maple/xd_test.sh dtd 1",
        "maple/xd_test.sh eurosat 1",
    ]
    assert [s.key for s in sweep.plan(["zsclip"], "base2new", ["dtd"], [1, 2])] == ["zsclip/base2new.sh dtd"]
    with pytest.raises(ValueError, match=r"maple has no few-shot script \(scripts/maple/fewshot.sh\)"):
        sweep.plan(["maple"], "fewshot", ["dtd"], [1])


def test_dry_run_prints_commands_and_skips_only_finished_runs(tmp_path, capfd):
    output = tmp_path / "output"
    finished = output / KD_DIR.format(dataset="dtd", seed=1)
    unfinished = output / KD_DIR.format(dataset="dtd", seed=2)
    finished.mkdir(parents=True)
    unfinished.mkdir(parents=True)
    (finished / "results.json").write_text(json.dumps({"final": {"accuracy": 50.0}}), encoding="utf-8")
    (unfinished / "results.json").write_text(json.dumps({"evaluations": []}), encoding="utf-8")

    argv = ["--methods", "promptkd", "--datasets", "dtd", "--seeds", "1", "2", "3", "--dry-run",
            "--output", str(output), "--teacher-root", str(tmp_path / "teachers"), "--data", str(tmp_path / "data"),
            "--opts", "OPTIM.MAX_EPOCH", "2"]  # fmt: skip
    assert sweep.main(argv) == 0
    out = capfd.readouterr().out
    assert "[1/4] bash scripts/promptsrc/base2new_train_teacher.sh dtd" in out
    assert f"--output-dir {tmp_path / 'teachers' / 'DescribableTextures'}" in out
    assert f"= finished, skipped: {finished}" in out
    train_lines = [line for line in out.splitlines() if line.startswith("+ ") and "--trainer PromptKD" in line]
    assert len(train_lines) == 2  # seeds 2 (unfinished: resumes) and 3
    assert all(line.endswith("OPTIM.MAX_EPOCH 2") and "KD_WEIGHT 200.0" in line for line in train_lines)
    assert f"--output-dir {unfinished} " in train_lines[0]
    assert not (tmp_path / "teachers").exists() and not (output / KD_DIR.format(dataset="dtd", seed=3)).exists()

    assert sweep.main(argv[:-3] + ["--force"]) == 0  # FORCE=1: the finished run is listed again
    assert "finished, skipped" not in capfd.readouterr().out


def test_bad_arguments_are_explained(capsys):
    assert sweep.main(["--methods", "promptkd", "--datasets", "nosuch", "--dry-run"]) == 2
    assert "unknown dataset(s) nosuch" in capsys.readouterr().err
    assert sweep.main(["--methods", "coop", "--datasets", "dtd", "--opts", "OPTIM.MAX_EPOCH", "--dry-run"]) == 2
    assert "KEY VALUE pairs" in capsys.readouterr().err
    assert sweep.main(["--methods", "promptkd", "--protocol", "fewshot", "--datasets", "dtd", "--dry-run"]) == 2
    assert "no few-shot protocol" in capsys.readouterr().err


@pytest.mark.slow
def test_real_sweep_on_the_demo_data(tmp_path, capfd):
    """PromptKD (teacher once, two students) and CoOp (train + test per seed), one dataset, two seeds."""
    assets = demo.prepare(tmp_path / "work")
    output, teachers = tmp_path / "output", tmp_path / "teachers"
    argv = [
        "--methods", "promptkd", "coop", "--datasets", "demo", "--seeds", "1", "2",
        "--data", str(assets.data), "--output", str(output), "--teacher-root", str(teachers),
        "--opts", *demo.student_opts(assets, epochs=2), "TRAINER.COOP.CTX_INIT", "a photo of a",
        "--teacher-opts", *demo.teacher_opts(assets, epochs=2),
    ]  # fmt: skip
    assert sweep.main(argv) == 0
    out = capfd.readouterr().out
    assert "Sweep: 7 script calls, 0 failed" in out
    assert len(list((teachers / "Demo").glob("log.txt*"))) == 1  # the teacher ran once
    for seed in (1, 2):
        results = json.loads((output / KD_DIR.format(dataset="demo", seed=seed) / "results.json").read_text())
        assert results["seed"] == seed and "final" in results and results["base"]["epoch"] in (1, 2)
        new = output / f"base2new/test_new/demo/shots_16/CoOp/vit_b16_ctxv1/seed{seed}/results.json"
        assert json.loads(new.read_text())["subsample_classes"] == "new"
    # the closing table: both methods, both seeds, and a mean row with finite numbers
    table = out[out.index("Results under") :]
    assert "== PromptKD, ViT-B/16 · base-to-novel" in table and "== CoOp, ViT-B/16 · base-to-novel" in table
    number = r"([\d.]+)(?: ± [\d.]+)?"
    rows = re.findall(rf"^Demo\s+(1|2|mean ± std \(2\))\s+{number}\s+{number}\s+{number}", table, flags=re.M)
    assert len(rows) == 6
    assert "missing" not in table and "unfinished" not in table
    summary = table[table.index("== Summary: base/novel/HM") :]
    assert re.search(r"^Demo\s+[\d.]+/[\d.]+/[\d.]+\s+[\d.]+/[\d.]+/[\d.]+\s*$", summary, flags=re.M)

    # run again: everything is finished, nothing runs
    assert sweep.main(argv) == 0
    again = capfd.readouterr().out
    assert again.count("= finished, skipped") == 7
    assert "\n+ " not in again


def test_sweep_sh_runs_the_python_runner(repo_root: Path, tmp_path):
    result = subprocess.run(
        ["bash", "scripts/sweep.sh", "--methods", "zsclip", "--datasets", "dtd", "--dry-run", "--output", str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[1/1] bash scripts/zsclip/base2new.sh dtd" in result.stdout
    assert result.stdout.count("--trainer ZeroshotCLIP") == 2  # base and new classes


def _stub_interpreters(folder: Path) -> Path:
    """``python`` and ``python3`` on a PATH of their own that say which one ran (and run nothing)."""
    folder.mkdir()
    for name in ("python", "python3"):
        stub = folder / name
        stub.write_text(f"#!/bin/sh\necho \"stub {name} $*\"\n", encoding="utf-8")
        stub.chmod(0o755)
    return folder


def test_scripts_use_the_interpreter_in_PYTHON_not_the_one_on_PATH(repo_root: Path, tmp_path):
    """A suite run by a venv's interpreter that is not activated: PATH's python lacks the dependencies."""
    stubs = _stub_interpreters(tmp_path / "bin")
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", PYTHON=sys.executable)
    argv = ["bash", "scripts/sweep.sh", "--methods", "zsclip", "--datasets", "dtd", "--dry-run", "--output", str(tmp_path)]
    result = subprocess.run(argv, cwd=repo_root, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "stub" not in result.stdout and "[1/1] bash scripts/zsclip/base2new.sh dtd" in result.stdout

    del env["PYTHON"]  # without PYTHON: python3 from PATH
    result = subprocess.run(argv, cwd=repo_root, env=env, capture_output=True, text=True, check=False)
    assert result.stdout.startswith("stub python3 tools/sweep.py --methods zsclip"), result.stdout


def test_with_a_teacher_bank_it_is_built_once_per_dataset_before_the_students(tmp_path, capfd):
    steps = sweep.plan(["promptkd"], "base2new", ["caltech101", "dtd"], [1, 2, 3], bank=True)
    assert [s.key for s in steps[:5]] == [
        "promptsrc/base2new_train_teacher.sh caltech101",
        "[teacher bank] promptkd/base2new_train.sh caltech101 1",
        "promptkd/base2new_train.sh caltech101 1",
        "promptkd/base2new_train.sh caltech101 2",
        "promptkd/base2new_train.sh caltech101 3",
    ]
    assert steps[1].bank and steps[1].needs == steps[0].key and all(s.needs == steps[1].key for s in steps[2:5])
    assert len(steps) == 2 * 5
    xd = sweep.plan(["promptkd"], "xd", ["dtd", "eurosat"], [1], bank=True)
    assert [s.key for s in xd] == [
        "promptsrc/xd_train_teacher.sh", "[teacher bank] promptkd/xd_train.sh dtd 1", "promptkd/xd_train.sh dtd 1",
        "[teacher bank] promptkd/xd_train.sh eurosat 1", "promptkd/xd_train.sh eurosat 1",
    ]  # fmt: skip
    assert not any(s.bank for s in sweep.plan(["promptkd"], "base2new", ["dtd"], [1]))
    assert sweep.uses_teacher_bank(["OPTIM.MAX_EPOCH", "2", "TRAINER.PROMPTKD.TEACHER_BANK", "auto"])
    assert not sweep.uses_teacher_bank(["TRAINER.PROMPTKD.TEACHER_BANK", "auto", "TRAINER.PROMPTKD.TEACHER_BANK", ""])

    # the dry run: the bank step is the first seed's command, launched as tools/build_teacher_bank.py
    argv = ["--methods", "promptkd", "--datasets", "dtd", "--seeds", "1", "2", "--dry-run", "--output",
            str(tmp_path / "output"), "--opts", "TRAINER.PROMPTKD.TEACHER_BANK", "auto"]  # fmt: skip
    assert sweep.main(argv) == 0
    lines = [line for line in capfd.readouterr().out.splitlines() if line.startswith("+ ") and "PromptKD" in line]
    assert len(lines) == 3 and "tools/build_teacher_bank.py train.py --root" in lines[0]
    assert lines[0].split("train.py", 1)[1] == lines[1].split("train.py", 1)[1]  # the same arguments as seed 1's
    assert all("tools/build_teacher_bank.py" not in line for line in lines[1:])


def test_a_plugin_method_runs_the_shared_protocol_scripts_with_its_trainer_and_yaml():
    plugins = {"MyMethod": "/x/my_method.yaml"}
    xd = sweep.plan(["MyMethod"], "xd", ["dtd", "eurosat"], [1], plugins=plugins)
    assert [s.key for s in xd] == ["TRAINER=MyMethod plugin/xd_train.sh 1", "TRAINER=MyMethod plugin/xd_test.sh dtd 1",
                                   "TRAINER=MyMethod plugin/xd_test.sh eurosat 1"]  # fmt: skip
    assert all(s.env == {"TRAINER": "MyMethod", "CONFIG_FILE": "/x/my_method.yaml"} for s in xd)
    assert xd[1].needs == xd[0].key
    with pytest.raises(ValueError, match="base2new and xd"):
        sweep.plan(["MyMethod"], "fewshot", ["dtd"], [1], plugins=plugins)
    assert "plugin" not in sweep.METHODS  # scripts/plugin/ is not a method of its own
