"""tools/demo.py runs end to end on CPU and prints the result table: the random-weight smoke run, and the
MiniWorld with pretrained miniature CLIPs (smaller settings) where the paper's orderings can be checked."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

from tools import demo

METHODS = ["Zero-shot CLIP", "CoOp", "PromptSRC teacher (stage 1)", "PromptKD student (stage 2)"]


@pytest.mark.slow
def test_demo_runs_every_method_and_prints_a_table(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path / "demo"), "--backbones", "random"]) == 0
    out = capsys.readouterr().out
    table = out[out.rindex("method ") :]
    for method in METHODS:
        row = re.search(rf"^{re.escape(method)}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", table, flags=re.M)
        assert row, f"{method} missing from\n{table}"
        base, novel, hm = map(float, row.groups())
        assert all(math.isfinite(v) and 0 <= v <= 100 for v in (base, novel, hm))
        assert hm == pytest.approx(demo.harmonic_mean(base, novel), abs=0.01)
    assert "random-weight" in out
    runs = tmp_path / "demo" / "runs"
    listed = re.findall(r"^(?:Runs|Demo data|Checkpoints|Plot|Training curves)[^:]*: (.+)$", out, flags=re.M)
    paths = [Path(p.strip()) for line in listed for p in re.split(r",\s+|\s{2,}\S[^:]*:\s+", line)]
    assert len(paths) == 7, listed  # runs, data, clip dir, 2 checkpoints, plot, curves
    for path in paths:
        assert path.exists() and (tmp_path / "demo") in path.parents, path
    assert (tmp_path / "demo" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = [
        runs / "ZeroshotCLIP" / "test_base" / "results.json",
        runs / "CoOp" / "train_base" / "prompt_learner" / "model.pth.tar-10",
        runs / "PromptSRC_teacher" / "train_base" / "VLPromptLearner" / "model.pth.tar-10",
        runs / "PromptKD" / "seed_1" / "VLPromptLearner" / "model-best.pth.tar",
        runs / "PromptKD" / "seed_1" / "log.txt",
    ]
    for path in expected:
        assert path.is_file(), path
    assert (tmp_path / "demo" / "results_curves.png").is_file()  # plot_results' name for the curves

    # a short story on the console: no config dumps, no per-batch lines, one line per epoch per trained method
    assert "** Config **" not in out and not re.search(r"^epoch \[", out, flags=re.M)
    assert len(re.findall(r"^epoch \d+/10: ", out, flags=re.M)) == 3 * 10
    assert "selection split: base-class test images (as the original)" in out
    assert "load_model() is skipped" not in out
    assert len(out.splitlines()) < 120, out
    for log in runs.rglob("log.txt"):
        text = log.read_text(encoding="utf-8")
        assert text.count("Setting fixed seed") == 1 and "==>" not in text, log  # only its own run's lines
        assert "** Config **" in text
    coop_log = (runs / "CoOp" / "train_base" / "log.txt").read_text(encoding="utf-8")
    assert re.search(r"^epoch \[1/10\] batch \[1/", coop_log, flags=re.M)  # upstream's per-batch lines stay
    if importlib.util.find_spec("tensorboard") is None:
        assert not list(runs.rglob("tensorboard")), "an empty tensorboard/ folder without tensorboard"


def short_recipes() -> dict:
    """The demo's pretraining recipes with fewer steps, so the world's test stays near a minute."""
    from dataclasses import replace

    from tools import pretrain_clip

    return {
        kind: replace(recipe, images_per_class=16, settings=replace(recipe.settings, steps=steps))
        for (kind, recipe), steps in zip(pretrain_clip.MINIWORLD_CLIPS.items(), (300, 200))
    }


@pytest.mark.slow
def test_miniworld_shows_the_papers_orderings(tmp_path, one_thread):
    """Fixed seeds, shorter pretraining, 4 epochs. Margins (accuracy points) are stated per assertion; only the
    orderings that seeds 1-3 of the full demo all showed are asserted (README, "The demo"). Not asserted, because
    the world does not show them reliably: PromptSRC keeping the teacher's zero-shot novel accuracy (seed 2: -6),
    and the PromptKD student as close to its teacher as in the paper (3-7 HM points below it)."""
    world = demo.Demo(tmp_path, "cpu", epochs=4, backbones="miniworld", seed=1, recipes=short_recipes())
    zs_base, zs_novel = world.zero_shot()
    student_zs = demo.harmonic_mean(zs_base, zs_novel)
    teacher_zs = demo.harmonic_mean(*world.zero_shot(teacher=True))
    coop_base, coop_novel = world.coop()
    assert teacher_zs > student_zs + 5, (teacher_zs, student_zs)  # the larger model is better zero-shot
    assert coop_base > zs_base, (coop_base, zs_base)  # prompts fitted on base raise base accuracy
    assert coop_novel < zs_novel, (coop_novel, zs_novel)  # ... and CoOp loses novel accuracy
    results = json.loads((tmp_path / "runs" / "ZeroshotCLIP" / "test_base" / "results.json").read_text())
    assert results["final"]["accuracy"] == zs_base
    world.teacher()
    kd_base, kd_novel = world.promptkd()  # measured here: 66.5 / 66.5 against the student's zero-shot 56.5 / 59.5
    assert kd_base > zs_base + 3, (kd_base, zs_base)  # distilled on unlabeled images, above its own zero-shot
    assert kd_novel > zs_novel + 3, (kd_novel, zs_novel)  # ... on the classes its teacher never trained on too
