"""The README cannot rot: its command blocks marked ``<!-- runnable -->`` run verbatim, and its example trainer
trains.

The commands run in a sandbox that looks like a fresh checkout (symlinks to the repository's code, empty
``data/``, ``output/`` and ``teacher_model/``), with tiny generated datasets in the real layouts under ``data/`` and
tiny random-weight CLIPs. The only change to a command is appended overrides: run scripts get the tiny-model
``KEY VALUE`` pairs of ``tools/demo.py`` (checkpoint paths, input size, prompt depths, one epoch).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.datasets.layouts import write_layout
from tools import demo

README = REPO_ROOT / "README.md"
CODE = ("train.py", "dassl", "trainers", "datasets", "configs", "scripts", "tools")
DATASETS = ("caltech101", "dtd", "oxford_pets", "imagenet", "imagenet_sketch")


def fenced_blocks(marker: str) -> list[tuple[str, str]]:
    """(marker argument, block body) for every fenced block right after a ``<!-- marker ... -->`` line."""
    pattern = rf"^<!-- {marker}(?::\s*(\S+))? -->\n```\w*\n(.*?)^```"
    return [(m.group(1) or "", m.group(2)) for m in re.finditer(pattern, README.read_text(), flags=re.M | re.S)]


def runnable_commands() -> list[str]:
    commands = []
    for _, body in fenced_blocks("runnable"):
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def test_readme_marks_the_commands_a_user_types():
    commands = runnable_commands()
    assert any(c.startswith("bash scripts/promptkd/base2new_train.sh") for c in commands)
    assert any(c.startswith("python tools/parse_results.py") for c in commands)
    assert any(c.startswith("python tools/plot_results.py") for c in commands)
    assert any(c.startswith("python tools/predict.py") for c in commands)
    assert any(c.startswith("python tools/export_student.py") for c in commands)
    # the quick start's commands are exercised elsewhere (tests/tools/test_demo.py, CI), so they are not repeated
    quick_start = README.read_text().split("## Quick start", 1)[1].split("##", 1)[0]
    assert "python tools/demo.py" in quick_start and "python -m pytest -q" in quick_start


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    for name in CODE:
        (root / name).symlink_to(REPO_ROOT / name)
    for stem in DATASETS:
        write_layout(stem, root / "data")
    return root


def with_overrides(command: str, assets: demo.TinyAssets) -> str:
    """The command plus the tiny-model overrides its kind of script needs."""
    words = shlex.split(command)
    if words[:1] == ["bash"] and words[1].startswith("scripts/"):
        teacher = "teacher" in words[1]
        opts = demo.teacher_opts(assets, epochs=1) if teacher else demo.student_opts(assets, epochs=1)
        words += opts
    return shlex.join(words)


@pytest.mark.slow
def test_readme_commands_run_verbatim(sandbox):
    assets = demo.prepare(sandbox / "tiny")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATA", "OUTPUT", "TEACHER_ROOT", "FORCE", "DRY_RUN", "CFG", "LOADEP", "SUB", "XD_SOURCE")}  # fmt: skip
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHON=sys.executable,
        CLIP_CACHE_DIR=str(sandbox / "clip_cache"),
        PROMPTKD_CACHE_DIR=str(sandbox / "cache"),
        CUDA_VISIBLE_DEVICES="",
    )
    outputs = {}
    for command in runnable_commands():
        full = with_overrides(command, assets)
        proc = subprocess.run(["bash", "-c", full], cwd=sandbox, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"README command failed: {full}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        outputs[command] = proc.stdout

    out = sandbox / "output"
    kd = "PromptKD/vit_b16_c2_ep20_batch8_4+4ctx"
    student = json.loads((out / f"base2new/train_base/caltech101/shots_0/{kd}/seed_1/results.json").read_text())
    assert math.isfinite(student["hm"]) and student["base"]["epoch"] == 1
    assert (sandbox / "teacher_model/Caltech101/VLPromptLearner/model.pth.tar-1").is_file()
    assert (sandbox / "teacher_model/ImageNet-xd/VLPromptLearner/model.pth.tar-1").is_file()
    assert "final" in json.loads((out / f"oxford_pets/{kd}_cross_datasets_0shots/seed1/results.json").read_text())
    cross_log = (out / f"oxford_pets/{kd}_cross_datasets_0shots/seed1/log.txt").read_text()
    assert "Accuracy of the last-epoch model" in cross_log and "Novel accuracy" not in cross_log  # no novel classes
    assert (out / f"dg/imagenet_sketch/{kd}_cross_datasets_0shots/seed1/results.json").is_file()
    for phase in ("test_base", "test_new"):
        assert (out / f"base2new/{phase}/caltech101/shots_0/ZeroshotCLIP/vit_b16/results.json").is_file()
    assert (out / "base2new/test_new/caltech101/shots_16/CoOp/vit_b16_ctxv1/seed1/results.json").is_file()

    table = outputs["python tools/parse_results.py output/base2new --compare paper"]
    for title in ("== PromptKD, ViT-B/16", "== CoOp, ViT-B/16", "== ZeroshotCLIP, ViT-B/16"):
        assert title in table
    promptkd = table[table.index("== PromptKD") :].split("\n== ", 1)[0]
    caltech = next(line for line in promptkd.splitlines() if line.startswith("Caltech101") and "mean" in line)
    assert "98.91/96.65/97.77" in caltech  # the paper's Caltech101 row, next to ours
    sweep = next(v for k, v in outputs.items() if k.startswith("python tools/sweep.py"))
    assert "= finished, skipped: " in sweep  # the Caltech101 seed-1 runs made above
    assert "scripts/promptsrc/base2new_train_teacher.sh dtd" in sweep
    csv_rows = (sandbox / "results.csv").read_text().splitlines()
    assert csv_rows[0].startswith("experiment,protocol,trainer,dataset,seed") and len(csv_rows) > 5
    assert (sandbox / "results.png").read_bytes()[:4] == b"\x89PNG"
    # "Use your student": predict, export (safetensors + ONNX + the stand-alone loader), upstream layout
    predicted = next(v for k, v in outputs.items() if k.startswith("python tools/predict.py") and "--topk 3" in k)
    assert "top-1" in predicted and "top-3" in predicted and "Faces/image_0001.jpg" in predicted
    exported = sandbox / "exported" / "caltech101_student"
    assert json.loads((exported / "config.json").read_text())["classnames"] == ["face", "leopard", "airplane", "anchor"]
    assert (exported / "model.onnx").is_file() and (exported / "model.safetensors").is_file()
    assert "4 classes" in next(v for k, v in outputs.items() if k.startswith("python -c"))
    assert (sandbox / "upstream" / "VLPromptLearner" / "model-best.pth.tar").is_file()


def example_command() -> list[str]:
    """The "Adding a method" command, as words (line continuations joined)."""
    ((_, body),) = fenced_blocks("example-command")
    return shlex.split(body.replace("\\\n", " "))


def test_readme_adding_a_method_shows_a_file_its_yaml_and_the_command():
    files = dict(fenced_blocks("example"))
    assert sorted(files) == ["my_methods/coop_ls.py", "my_methods/coop_ls.yaml"]
    assert len(files["my_methods/coop_ls.py"].splitlines()) <= 40  # a short file, as the README promises
    command = example_command()
    assert command[:4] == ["python", "train.py", "--plugin", "my_methods/coop_ls.py"]
    assert command[command.index("--config-file") + 1] == "my_methods/coop_ls.yaml"
    assert not (REPO_ROOT / "my_methods").exists()  # the example lives outside the repository


@pytest.mark.slow
def test_readme_example_method_trains_with_its_command(sandbox):
    """The README's method file and yaml, written where it says, run by its command verbatim (+ tiny overrides)."""
    for target, code in fenced_blocks("example"):
        (sandbox / target).parent.mkdir(parents=True, exist_ok=True)
        (sandbox / target).write_text(code, encoding="utf-8")
    assets = demo.prepare(sandbox / "tiny")
    command = example_command() + demo.student_opts(assets, epochs=2) + ["TRAINER.COOPLS.PREC", "fp32"]
    env = {**os.environ, "DATA": str(sandbox / "data"), "PYTHON": sys.executable}
    env.pop("PROMPTKD_PLUGINS", None)
    full = shlex.join([sys.executable if w == "python" else w for w in command]).replace("'$DATA'", "$DATA")
    proc = subprocess.run(["bash", "-c", full], cwd=sandbox, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{full}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    run = sandbox / "output/CoOpLS/caltech101/seed1"
    results = json.loads((run / "results.json").read_text())
    assert results["trainer"] == "CoOpLS" and math.isfinite(results["final"]["accuracy"])
    assert "SMOOTHING: 0.2" in (run / "config.yaml").read_text()  # the yaml's value of the method's own key
    checkpoint = torch.load(run / "prompt_learner" / "model.pth.tar-2", weights_only=True)
    assert sorted(checkpoint["state_dict"]) == ["ctx"]  # the frozen CLIP is not saved
