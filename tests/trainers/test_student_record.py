"""The saved PromptKD student is self-contained: eval-only needs neither the teacher checkpoint nor the cache."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from trainers.student_record import StudentCheckpointError, find_checkpoint, read_student_record


def test_the_checkpoint_carries_class_vectors_names_backbone_and_design(trained_student):
    demo, run = trained_student
    record, checkpoint = read_student_record(run)
    assert record["checkpoint"].endswith("VLPromptLearner/model-best.pth.tar")
    assert record["classnames"] == checkpoint["meta"]["classnames"] and len(record["classnames"]) == 12
    vectors = record["class_vectors"]
    assert vectors.shape == (12, 768) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(12))
    assert record["design"] == {"n_ctx": 4, "depth": 3, "project_layers": 2, "out_dim": 768,
                                "token_layout": "tokens_first"}
    assert "token_layout" not in record["backbone"]["architecture"]
    from dassl.utils.download import sha256_of_file

    assert record["backbone"]["sha256"] == sha256_of_file(demo.assets.student_clip)
    assert record["backbone"]["architecture"]["width"] == 128
    assert record["preprocess"]["resolution"] == [112, 112] and record["preprocess"]["interpolation"] == "bicubic"
    assert float(record["logit_scale"].exp()) == pytest.approx(100.0, rel=1e-3)
    assert record["teacher"]["checkpoint"].endswith("model.pth.tar-1") and record["modal"] == "base2novel"
    # every checkpoint of the run has it, and it loads with weights_only=True
    last = torch.load(run / "VLPromptLearner" / "model.pth.tar-1", weights_only=True)
    torch.testing.assert_close(last["student"]["class_vectors"], vectors)


def test_eval_only_without_teacher_or_cache_gives_the_training_numbers(trained_student, tmp_path):
    demo, run = trained_student
    trained = json.loads((run / "results.json").read_text())
    # a copy of the world without the teacher's checkpoint folder and without the class-vector cache
    saved = tmp_path / "student_run"
    shutil.copytree(run, saved)
    teacher_dir = demo.out / "runs" / "PromptSRC_teacher"
    moved_teacher, moved_cache = tmp_path / "teacher_away", tmp_path / "cache_away"
    shutil.move(teacher_dir, moved_teacher)
    shutil.move(demo.assets.cache, moved_cache)
    try:
        demo.promptkd(out="eval_without_teacher", flags=("--eval-only", "--model-dir", str(saved)))
        from tools import predict  # prediction needs neither either

        images = sorted((demo.assets.data / "demo" / "images").rglob("*.png"))[:3]
        out = tmp_path / "pred.json"
        assert predict.main([str(saved), *map(str, images), "--format", "json", "--output", str(out)]) == 0
        assert len(json.loads(out.read_text())) == 3
    finally:
        shutil.move(moved_teacher, teacher_dir)
        shutil.move(moved_cache, demo.assets.cache)
    again = json.loads((demo.out / "runs" / "eval_without_teacher" / "results.json").read_text())
    assert again["novel"]["accuracy"] == pytest.approx(trained["novel"]["accuracy"])
    assert again["base"]["accuracy"] == pytest.approx(trained["base"]["accuracy"])
    log = (demo.out / "runs" / "eval_without_teacher" / "log.txt").read_text()
    assert "Class vectors: from the saved student" in log and "Teacher: IVLP" not in log


def test_a_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(StudentCheckpointError, match="run folder with VLPromptLearner/model-best.pth.tar"):
        find_checkpoint(tmp_path)
    torch.save({"state_dict": {}, "meta": {"trainer": "CoOp"}}, tmp_path / "model-best.pth.tar")
    with pytest.raises(StudentCheckpointError, match="is a CoOp checkpoint"):
        read_student_record(tmp_path)


def test_a_run_folder_of_another_trainer_is_named_as_such(tmp_path):
    run = tmp_path / "coop_run"
    (run / "prompt_learner").mkdir(parents=True)
    (run / "prompt_learner" / "model.pth.tar-1").write_bytes(b"")
    (run / "results.json").write_text(json.dumps({"trainer": "CoOp"}))
    with pytest.raises(StudentCheckpointError, match=r"coop_run is a CoOp run, not a PromptKD student's"):
        find_checkpoint(run)
    (run / "results.json").write_text("{not json")  # unreadable: the generic message, not a crash
    with pytest.raises(StudentCheckpointError, match="No checkpoint found at"):
        find_checkpoint(run)
