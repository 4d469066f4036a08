"""Killed at any moment and restarted with the same command, a run ends as an uninterrupted one; a finished run
started again changes nothing; a cache never changes a number (issue: runs you can trust).

The world is the demo's: tiny CLIPs, the demo data, a PromptSRC teacher trained once for the module.
benchmarks/fault_injection.py runs the same with many random kills and prints the tally.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from benchmarks.fault_injection import World, differences, point_counts, run_with_kills, table
from trainers.teacher import TeacherCheckpointError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("world"), epochs=2)


@pytest.mark.parametrize("method", ["CoOp", "PromptKD"])
def test_kill_and_restart_ends_as_an_uninterrupted_run(world, method):
    counts = point_counts(world, method, f"reference/{method}/seed_1")
    saves, evaluations = counts["checkpoint-saved"], counts["evaluation-recorded"]
    assert saves >= 3 and evaluations >= 3
    trials = {
        "twice: after a training step, then during a checkpoint write": [("batch", 2), ("checkpoint-write", 2)],
        "between the last two saves (model.pth.tar-N written, model-last not)": [("checkpoint-saved", saves - 1)],
        "after the final evaluation, before results.json": [("evaluation-recorded", evaluations)],
    }  # fmt: skip
    reference = world.run_dir(f"reference/{method}/seed_1")
    for index, (moment, faults) in enumerate(trials.items()):
        out = f"trial_{index}/{method}/seed_1"
        kills = run_with_kills(world, method, out, faults)
        assert kills == len(faults), f"{moment}: the kill point was not reached"
        assert differences(reference, world.run_dir(out)) == [], moment
        assert table(reference.parent) == table(world.run_dir(out).parent), moment
    results = json.loads((reference / "results.json").read_text())
    if method == "PromptKD":
        assert {"base", "novel", "hm", "base_last", "novel_last"} <= set(results)


def _student_tensors(run_dir):
    return {name: torch.load(run_dir / "VLPromptLearner" / name, weights_only=True)["state_dict"]
            for name in ("model-best.pth.tar", "model-last.pth.tar")}  # fmt: skip


def test_cold_and_warm_class_vector_cache_end_bit_identical(world, tmp_path):
    cache = ["TRAINER.PROMPTKD.CLASS_VECTOR_CACHE", str(tmp_path / "cache")]
    cold = world.demo.promptkd(*cache, out="cache/cold")
    assert len(list((tmp_path / "cache").glob("class_vectors-*.pt"))) == 1
    warm = world.demo.promptkd(*cache, out="cache/warm")
    assert cold == warm
    a, b = (_student_tensors(world.run_dir(f"cache/{n}")) for n in ("cold", "warm"))
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)


def test_another_teacher_backbone_does_not_reuse_the_class_vectors(world, tmp_path):
    from tools.demo import IMAGE_SIZE
    from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip

    cache = ["TRAINER.PROMPTKD.CLASS_VECTOR_CACHE", str(tmp_path / "cache")]
    world.demo.promptkd(*cache, out="backbone/first")
    other = tmp_path / "ViT-L-14.pt"
    save_tiny_clip(make_tiny_clip("teacher", image_size=IMAGE_SIZE, layers=3, seed=99), other)
    world.demo.promptkd(*cache, "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(other), out="backbone/second")
    assert len(list((tmp_path / "cache").glob("class_vectors-*.pt"))) == 2


def test_a_teacher_of_other_classes_is_refused_in_base2novel(world, tmp_path):
    source = world.demo.out / "runs" / "PromptSRC_teacher" / "train_base" / "VLPromptLearner"
    folder = tmp_path / "OtherDataset" / "VLPromptLearner"
    folder.mkdir(parents=True)
    name = f"model.pth.tar-{world.epochs}"
    checkpoint = torch.load(source / name, weights_only=True)
    checkpoint["meta"]["classnames"] = ["cat", "dog"]
    torch.save(checkpoint, folder / name)
    with pytest.raises(TeacherCheckpointError, match=r"trained on 2 classes \(cat, dog, \.\.\.\).*TRAINER.MODAL cross"):
        world.demo.promptkd("TRAINER.PROMPTKD.TEACHER_CKPT", str(folder), out="wrong_teacher")
    shutil.rmtree(world.run_dir("wrong_teacher"), ignore_errors=True)


def test_the_demo_runs_again_in_its_folder_with_the_same_numbers(world):
    demo = world.demo
    first = (demo.coop(), demo.teacher(), demo.promptkd())
    files = {p: p.stat().st_mtime_ns for p in (demo.out / "runs").rglob("results.json")}
    second = (demo.coop(), demo.teacher(), demo.promptkd())
    assert first == second
    assert {p: p.stat().st_mtime_ns for p in files} == files  # finished runs are left as they are
