"""tools/export_checkpoint.py --format upstream: the original layout and key names, and the round trip."""

from __future__ import annotations

import json

import pytest
import torch

from dassl.config import get_cfg_default
from dassl.utils import load_checkpoint
from tests.tools.test_predict import _eval_only
from tools import export_checkpoint
from tools.import_checkpoint import import_teacher, upstream_to_ours
from trainers.backbone import load_clip
from trainers.config import extend_cfg
from trainers.teacher import build_teacher, read_teacher_state, teacher_design


def test_teacher_export_reproduces_the_original_checkpoint_layout(golden_dir, tmp_path):
    """The golden teacher (written by the original code), read into our format and written back, has the original's
    keys, shapes and values."""
    original_file = golden_dir / "promptkd" / "teacher_model" / "Caltech101" / "VLPromptLearner" / "model-best.pth.tar"
    original = load_checkpoint(str(original_file))["state_dict"]
    manifest = json.loads((golden_dir / "promptsrc" / "manifest.json").read_text())
    state = read_teacher_state(original_file)
    cfg = extend_cfg(get_cfg_default())
    cfg.MODEL.BACKBONE.PATH = str(golden_dir / "clip" / "ViT-L-14.pt")
    ours = {"state_dict": upstream_to_ours(state, teacher_design(state)), "epoch": 20,
            "meta": {"trainer": "PromptSRC", "classnames": manifest["classnames"], "config": cfg.dump()}}  # fmt: skip
    exported = export_checkpoint.teacher_to_upstream(ours)
    assert set(exported) == set(original) and len(exported) == 401
    for key, value in original.items():
        assert tuple(exported[key].shape) == tuple(value.shape), key
        torch.testing.assert_close(exported[key].float(), value.float(), rtol=0, atol=0, msg=key)


def _teacher_outputs(checkpoint, clip_file, classnames, image):
    teacher = build_teacher(load_clip("ViT-L/14", str(clip_file)), classnames, read_teacher_state(checkpoint),
                            "a photo of a")  # fmt: skip
    return teacher.class_vectors(), teacher.image_features(image)


def test_round_trip_ours_upstream_ours_gives_identical_logits(trained_student, tmp_path):
    demo, run = trained_student
    image = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(5))

    # the teacher: ours -> upstream -> (import) ours
    ours_teacher = demo.teacher_checkpoint()
    upstream_teacher = tmp_path / "teacher" / "model-best.pth.tar"
    assert export_checkpoint.main([str(ours_teacher), "--format", "upstream", "--out", str(upstream_teacher)]) == 0
    raw = torch.load(upstream_teacher, weights_only=True)
    assert sorted(raw) == ["epoch", "optimizer", "scheduler", "state_dict", "val_result"]
    assert "prompt_learner.ZS_image_encoder.conv1.weight" in raw["state_dict"] and "image_encoder.VPT" in raw["state_dict"]
    back = tmp_path / "teacher_back.pth.tar"
    import_teacher(str(upstream_teacher), str(back))
    names = load_checkpoint(str(ours_teacher))["meta"]["classnames"]
    reference = _teacher_outputs(ours_teacher, demo.assets.teacher_clip, names, image)
    for file in (upstream_teacher, back):
        vectors, features = _teacher_outputs(file, demo.assets.teacher_clip, names, image)
        assert torch.equal(vectors, reference[0]) and torch.equal(features, reference[1])

    # the student: ours -> upstream -> loaded by our trainer (the path that reads original student checkpoints)
    upstream_student = tmp_path / "student" / "model-best.pth.tar"
    assert export_checkpoint.main([str(run), "--out", str(upstream_student)]) == 0
    state = torch.load(upstream_student, weights_only=True)["state_dict"]
    assert state["VPT_image_trans.conv1.0.weight"].shape == (768, 512, 1, 1)
    assert "image_encoder.transformer.resblocks.2.VPT_shallow" in state and "image_encoder.conv1.weight" in state
    assert not any(k.startswith(("vision_prompts.", "projector.")) for k in state)
    trainer = _eval_only(demo, run, "eval_for_roundtrip")
    trainer.set_model_mode("eval")
    with torch.no_grad():
        before = trainer.model(image)
        for p in trainer.model.vision_prompts.parameters():
            p.data.zero_()  # make sure the comparison is not vacuous
        assert not torch.equal(trainer.model(image), before)
        trainer.load_model_state_dict("VLPromptLearner", state)
        assert torch.equal(trainer.model(image), before)


def test_other_trainers_are_refused(tmp_path):
    torch.save({"state_dict": {}, "epoch": 1, "meta": {"trainer": "CoOp"}}, tmp_path / "model.pth.tar-1")
    with pytest.raises(export_checkpoint.ExportCheckpointError, match="writes our PromptSRC teachers"):
        export_checkpoint.export_upstream(str(tmp_path / "model.pth.tar-1"), str(tmp_path / "out.pth"))
