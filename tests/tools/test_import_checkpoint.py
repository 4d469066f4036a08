"""Importing an original PromptSRC teacher checkpoint into our format; the frozen teacher and its cache."""

from __future__ import annotations

import torch

from dassl.utils import load_checkpoint
from tools.import_checkpoint import import_teacher, main
from trainers.backbone import load_clip
from trainers.teacher import (
    build_teacher,
    cached_class_vectors,
    class_vector_cache_key,
    read_teacher_state,
)

CLASSES = ["face", "leopard", "motorbike", "accordion", "airplane", "anchor", "ant", "barrel", "bass", "beaver"]


def original(golden_dir):
    return golden_dir / "promptkd" / "teacher_model" / "Caltech101" / "VLPromptLearner" / "model-best.pth.tar"


def test_imported_teacher_gives_the_same_class_vectors(golden_dir, tmp_path):
    out = tmp_path / "model.pth.tar-20"
    design = import_teacher(str(original(golden_dir)), str(out))
    assert design["depth_text"] == design["depth_vision"] == 9
    ours = torch.load(out, weights_only=True)
    assert len(ours["state_dict"]) == 1 + 9 + 8 and ours["meta"]["backbone"] == "ViT-L/14"
    clip_path = str(golden_dir / "clip" / "ViT-L-14.pt")
    a = build_teacher(load_clip("ViT-L/14", clip_path), CLASSES, read_teacher_state(original(golden_dir)), "a photo of a")
    b = build_teacher(load_clip("ViT-L/14", clip_path), CLASSES, read_teacher_state(out), "a photo of a")
    torch.testing.assert_close(a.class_vectors(), b.class_vectors(), rtol=0, atol=0)
    golden = torch.load(golden_dir / "promptkd" / "outputs.pt", weights_only=True)["class_vectors"]
    torch.testing.assert_close(a.class_vectors(), golden, rtol=0, atol=5e-5 * golden.abs().max().item())

    # the teacher stays frozen and in eval mode whatever the trainer does to its models
    a.train()
    assert not a.training and not a.model.training
    assert not any(p.requires_grad for p in a.parameters())


def test_missing_deep_prompt_is_named(golden_dir, tmp_path, capsys):
    checkpoint = load_checkpoint(str(original(golden_dir)))
    del checkpoint["state_dict"]["text_encoder.transformer.resblocks.5.VPT_shallow"]
    broken = tmp_path / "broken.pth.tar"
    torch.save(checkpoint, broken)
    assert main([str(broken), "--out", str(tmp_path / "ours.pth.tar")]) == 2
    assert "text_encoder.transformer.resblocks.5.VPT_shallow" in capsys.readouterr().err
    assert not (tmp_path / "ours.pth.tar").exists()


def test_class_vector_cache_is_reused_and_keyed_by_checkpoint_and_classes(golden_dir, tmp_path):
    ckpt = tmp_path / "teacher.pth.tar"
    import_teacher(str(original(golden_dir)), str(ckpt))
    clip_file = golden_dir / "clip" / "ViT-L-14.pt"
    keyed = {"backbone_file": clip_file, "precision": "fp32", "device": "cpu", "token_layout": "batch_first"}
    key = class_vector_cache_key(str(ckpt), CLASSES, "ViT-L/14", "a photo of a", **keyed)
    assert cached_class_vectors(None, tmp_path / "cache", key) is None  # nothing cached yet
    teacher = build_teacher(
        load_clip("ViT-L/14", str(golden_dir / "clip" / "ViT-L-14.pt")), CLASSES, read_teacher_state(ckpt), "a photo of a"
    )
    first = cached_class_vectors(teacher, tmp_path / "cache", key)
    again = cached_class_vectors(None, tmp_path / "cache", key)  # a second run needs no teacher
    torch.testing.assert_close(again, first.cpu(), rtol=0, atol=0)
    assert class_vector_cache_key(str(ckpt), CLASSES[::-1], "ViT-L/14", "a photo of a", **keyed) != key
    state = torch.load(ckpt, weights_only=True)
    state["state_dict"]["prompt_learner.ctx"] += 1
    torch.save(state, ckpt)
    assert class_vector_cache_key(str(ckpt), CLASSES, "ViT-L/14", "a photo of a", **keyed) != key
