"""PromptKD: golden parity, the loss, and the whole stage-1 -> stage-2 pipeline through the real scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT
from tools.check_golden import check_fixture
from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip
from trainers.promptkd import build_projector, kd_loss
from trainers.teacher import (
    TeacherCheckpointError,
    read_teacher_state,
    resolve_teacher_checkpoint,
    teacher_design,
    teacher_record,
)


def test_golden_parity_with_the_original_promptkd(golden_dir):
    comparisons = check_fixture(golden_dir / "promptkd")
    assert not [(c.name, c.error, c.tolerance) for c in comparisons if not c.ok]
    names = {c.name for c in comparisons}
    assert {"outputs/class_vectors", "outputs/loss", "outputs/alt_loss", "outputs/eval_after_step_test_logits"} <= names
    assert "after_step/VPT_image_trans.conv1.1.running_var" in names  # BN statistics after the step


def test_kd_loss_is_forward_kl_times_t2_over_b_times_n():
    student, teacher = torch.randn(4, 6), torch.randn(4, 6)
    terms = kd_loss(student, teacher, temperature=2.0, weight=200.0)
    p_t = torch.softmax(teacher / 2, dim=1)
    manual = (p_t * (p_t.log() - torch.log_softmax(student / 2, dim=1))).sum() * 4 / (4 * 6)
    torch.testing.assert_close(terms["L_ukd"], manual)
    torch.testing.assert_close(terms["loss"], 200 * manual)


@pytest.mark.parametrize(("layers", "n_params"), [(1, 512 * 768 + 768), (2, 393_984 + 1_536 + 590_592), (3, None)])
def test_projector_depths(layers, n_params):
    projector = build_projector(512, 768, layers)
    count = sum(p.numel() for p in projector.parameters())
    if n_params is not None:
        assert count == n_params  # 2 layers: 986,112 as upstream's Feature_Trans_Module_two_layer
    assert projector(torch.randn(3, 512)).shape == (3, 768)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in projector) == layers - 1


def test_teacher_design_is_read_from_the_checkpoint(golden_dir, tmp_path):
    path = golden_dir / "promptkd" / "teacher_model" / "Caltech101" / "VLPromptLearner" / "model-best.pth.tar"
    state = read_teacher_state(path)
    assert teacher_design(state) == {
        "n_ctx_text": 4, "n_ctx_vision": 4, "depth_text": 9, "depth_vision": 9, "upstream_names": 1
    }  # fmt: skip
    del state["image_encoder.transformer.resblocks.4.VPT_shallow"]
    with pytest.raises(TeacherCheckpointError, match=r"prompt layers \[4\] are missing"):
        teacher_design(state)
    with pytest.raises(TeacherCheckpointError, match="base2new_train_teacher.sh"):
        resolve_teacher_checkpoint(str(tmp_path / "nothing" / "model-best.pth.tar"))
    (tmp_path / "run").mkdir()
    for n in (5, 20):
        (tmp_path / "run" / f"model.pth.tar-{n}").write_bytes(b"x")
    assert resolve_teacher_checkpoint(str(tmp_path / "run")).endswith("model.pth.tar-20")  # no renaming needed


def _script(args: list[str], env: dict) -> str:
    proc = subprocess.run(["bash", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.slow
def test_teacher_then_student_through_the_scripts(tmp_path):
    from datasets.demo import make_demo_dataset

    make_demo_dataset(tmp_path / "data", size=112)
    teacher_clip, student_clip = tmp_path / "clip" / "ViT-L-14.pt", tmp_path / "clip" / "ViT-B-16.pt"
    save_tiny_clip(make_tiny_clip("teacher", image_size=112, layers=3, seed=11), teacher_clip)
    save_tiny_clip(make_tiny_clip("student", image_size=112, layers=3, text_layers=1, seed=12), student_clip)
    env = dict(
        os.environ,
        DATA=str(tmp_path / "data"),
        OUTPUT=str(tmp_path / "output"),
        TEACHER_ROOT=str(tmp_path / "teacher_model"),
        PYTHON=sys.executable,
        CUDA_VISIBLE_DEVICES="",
    )
    common = ["INPUT.SIZE", "(112, 112)", "OPTIM.MAX_EPOCH", "2", "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "5"]

    # stage 1: the teacher (PromptSRC, 16 shots of the base classes by default; 2 here)
    _script(
        ["scripts/promptsrc/base2new_train_teacher.sh", "demo", "MODEL.BACKBONE.PATH", str(teacher_clip), *common,
         "DATASET.NUM_SHOTS", "2", "TRAINER.PROMPTSRC.PREC", "fp32", "TRAINER.PROMPTSRC.GPA_MEAN", "1",
         "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "3", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "3"],
        env,
    )  # fmt: skip
    teacher_file = tmp_path / "teacher_model" / "Demo" / "VLPromptLearner" / "model.pth.tar-2"
    assert teacher_file.is_file()

    # stage 2: the student, unlabeled train split of all 12 classes
    cache = tmp_path / "cache"
    student_opts = [
        "MODEL.BACKBONE.PATH", str(student_clip), "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(teacher_clip),
        *common, "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "3", "TRAINER.PROMPTKD.PREC", "fp32",
        "TRAINER.PROMPTKD.CLASS_VECTOR_CACHE", str(cache),
    ]  # fmt: skip
    out = _script(["scripts/promptkd/base2new_train.sh", "demo", "1", *student_opts], env)
    assert "KD_WEIGHT 1000.0" in out and "Teacher: IVLP with 4+4 ctx, prompt depth 3 (text) / 3 (vision)" in out
    run = tmp_path / "output" / "base2new" / "train_base" / "demo" / "shots_0" / "PromptKD"
    run = run / "vit_b16_c2_ep20_batch8_4+4ctx" / "seed_1"
    results = json.loads((run / "results.json").read_text())
    assert results["selection"]["rule"] == "best_val"
    for part in ("base", "novel", "base_last", "novel_last"):
        assert 0.0 <= results[part]["accuracy"] <= 100.0
    assert results["base"]["epoch"] == results["novel"]["epoch"] in (1, 2)
    b, n = results["base"]["accuracy"], results["novel"]["accuracy"]
    assert results["hm"] == pytest.approx(2 * b * n / (b + n) if b + n else 0.0)
    assert [e["num_samples"] for e in results["evaluations"] if e["split"] == "val"][0] == 6 * 8  # base test images

    # the class vectors were computed once and cached; the student checkpoint holds no teacher tensor
    (cached,) = list(cache.glob("class_vectors-*.pt"))
    vectors = torch.load(cached, weights_only=True)["class_vectors"]
    assert vectors.shape == (12, 768)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(12))
    saved = torch.load(run / "VLPromptLearner" / "model-best.pth.tar", weights_only=True)
    assert all(k.startswith(("vision_prompts.", "projector.")) for k in saved["state_dict"])
    assert "projector.1.running_mean" in saved["state_dict"]

    # --eval-only re-evaluates the saved student (teacher image encoder never runs) and reports base and novel
    eval_dir = tmp_path / "eval"
    evaluation = subprocess.run(
        [sys.executable, "train.py", "--root", env["DATA"], "--seed", "1", "--trainer", "PromptKD",
         "--dataset-config-file", "configs/datasets/demo.yaml",
         "--config-file", "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml",
         "--output-dir", str(eval_dir), "--eval-only", "--model-dir", str(run),
         "TRAINER.PROMPTKD.TEACHER_CKPT", str(teacher_file), *student_opts],
        cwd=REPO_ROOT, env=env, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert "Teacher: IVLP" not in evaluation.stdout  # class vectors from the cache: no teacher is built at eval
    again = json.loads((eval_dir / "results.json").read_text())
    assert again["novel"]["accuracy"] == pytest.approx(results["novel"]["accuracy"])
    assert again["base"]["accuracy"] == pytest.approx(results["base"]["accuracy"])


@pytest.mark.slow
def test_honest_selection_reports_the_base_accuracy_on_base_test_images(tmp_path):
    """With DATASET.VAL_SOURCE val (select on the json val split) or TEST.FINAL_MODEL last_step, the base number is
    the deployed model's accuracy on the base-class test images, not a val-split accuracy (or nothing)."""
    from tools.demo import Demo

    demo = Demo(tmp_path, "cpu", epochs=2)
    teacher_base, _ = demo.teacher()
    demo.promptkd("DATASET.VAL_SOURCE", "val", out="val_source")
    demo.promptkd("TEST.FINAL_MODEL", "last_step", out="last_step")
    # eval-only of the val-selected student reports the same base-class test accuracy
    demo.promptkd("DATASET.VAL_SOURCE", "val", out="val_source_eval", flags=(
        "--eval-only", "--model-dir", str(tmp_path / "runs" / "val_source")))
    split = json.loads((tmp_path / "data" / "demo" / "split_demo.json").read_text())
    n_base_val = sum(1 for _, label, _ in split["val"] if label < 6)
    n_base_test = sum(1 for _, label, _ in split["test"] if label < 6)
    assert n_base_val != n_base_test

    honest = json.loads((tmp_path / "runs" / "val_source" / "results.json").read_text())
    vals = [e for e in honest["evaluations"] if e["split"] == "val"]
    (test_base,) = [e for e in honest["evaluations"] if e["split"] == "test_base"]
    assert [e["num_samples"] for e in vals] == [n_base_val] * 2 and test_base["num_samples"] == n_base_test
    best = max(vals, key=lambda e: e["accuracy"])  # the first maximum is the deployed epoch
    assert honest["novel"]["epoch"] == test_base["epoch"] == best["epoch"]
    assert honest["base"] == {"accuracy": test_base["accuracy"], "epoch": best["epoch"], "evaluation": "test_base"}
    assert honest["selection"] == {"rule": "best_val", "split": "json val split", "evaluation": "val",
                                   "accuracy": best["accuracy"], "epoch": best["epoch"]}  # fmt: skip
    assert "base_last" not in honest
    again = json.loads((tmp_path / "runs" / "val_source_eval" / "results.json").read_text())
    assert [e["split"] for e in again["evaluations"]] == ["test_base", "test"]
    assert again["base"]["accuracy"] == pytest.approx(honest["base"]["accuracy"])
    assert again["novel"]["accuracy"] == pytest.approx(honest["novel"]["accuracy"])
    # the teacher's own record travels with the student's results (and is printed before distilling)
    assert honest["teacher"]["accuracy"] == teacher_base and honest["teacher"]["classes"] == "base"
    assert honest["teacher"]["checkpoint"].endswith("PromptSRC_teacher/train_base/VLPromptLearner/model.pth.tar-2")
    log = (tmp_path / "runs" / "val_source" / "log.txt").read_text()
    assert f"Teacher's own test accuracy: {teacher_base:.2f}% on the base classes of Demo (epoch 2" in log

    last = json.loads((tmp_path / "runs" / "last_step" / "results.json").read_text())
    assert [e["split"] for e in last["evaluations"]] == ["test_base", "test"]  # no per-epoch selection runs
    assert last["base"]["epoch"] == last["novel"]["epoch"] == 2
    b, n = last["base"]["accuracy"], last["novel"]["accuracy"]
    assert last["hm"] == pytest.approx(2 * b * n / (b + n) if b + n else 0.0)
    log = (tmp_path / "runs" / "last_step" / "log.txt").read_text()
    assert log.index("Evaluate on the *test_base* set") < log.rindex("Evaluate on the *test* set")


def test_teacher_record_is_read_next_to_the_checkpoint_folder(tmp_path):
    checkpoint = tmp_path / "teacher_model" / "DTD" / "VLPromptLearner" / "model.pth.tar-20"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    assert teacher_record(str(checkpoint)) is None  # an upstream teacher: no results.json
    results = tmp_path / "teacher_model" / "DTD" / "results.json"
    results.write_text("{truncated")
    assert teacher_record(str(checkpoint)) is None
    final = {"split": "test", "epoch": 20, "accuracy": 85.76}
    results.write_text(json.dumps({"dataset": "DescribableTextures", "subsample_classes": "base", "num_shots": 16,
                                   "final": final}))  # fmt: skip
    assert teacher_record(str(checkpoint)) == {
        "results": str(results), "dataset": "DescribableTextures", "classes": "base", "num_shots": 16,
        "accuracy": 85.76, "epoch": 20,
    }  # fmt: skip
