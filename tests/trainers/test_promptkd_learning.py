"""On the demo data with tiny random-weight CLIPs: the teacher learns its base classes, and distillation makes the
student agree with the teacher on held-out images. (Random backbones cannot show novel-class transfer.)"""

from __future__ import annotations

import pytest
import torch

import train
from dassl.engine import build_trainer
from dassl.evaluation.results import summarize
from dassl.utils import set_random_seed
from tests.conftest import REPO_ROOT
from tools.demo import Demo, common_opts

N_CLASSES = 12


@torch.no_grad()
def agreement(trainer) -> float:
    """Top-1 agreement of student and teacher over all classes, on the held-out test images of every class."""
    trainer.model.eval()
    agree = total = 0
    for loader in (trainer.val_loader, trainer.test_loader):
        for batch in loader:
            images = batch["img"].to(trainer.device)
            teacher = trainer.teacher.image_features(images) @ trainer.class_vectors.t()
            student = trainer.model(images) @ trainer.class_vectors.t()
            agree += (teacher.argmax(1) == student.argmax(1)).sum().item()
            total += len(images)
    return agree / total


@pytest.mark.slow
def test_teacher_learns_and_student_agreement_rises(tmp_path):
    demo = Demo(tmp_path, "cpu", epochs=4)
    teacher_base, _ = demo.teacher()  # PromptSRC on 16 shots of the base classes, 4 epochs
    assets = demo.assets
    argv = [
        "--root", str(assets.data), "--seed", "1", "--trainer", "PromptKD",
        "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
        "--config-file", str(REPO_ROOT / "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml"),
        "--output-dir", str(tmp_path / "student"), "DATASET.NUM_SHOTS", "0", "OPTIM.MAX_EPOCH", "10",
        "MODEL.BACKBONE.PATH", str(assets.student_clip), "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(assets.teacher_clip),
        "TRAINER.PROMPTKD.TEACHER_CKPT", str(tmp_path / "runs" / "PromptSRC_teacher" / "train_base" / "VLPromptLearner"),
        "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "3", "TRAINER.PROMPTKD.PREC", "fp32",
        "TRAINER.PROMPTKD.CLASS_VECTOR_CACHE", str(tmp_path / "cache"), *common_opts("cpu"),
    ]  # fmt: skip
    cfg = train.setup_cfg(train.build_parser().parse_args(argv))
    set_random_seed(1)
    trainer = build_trainer(cfg)
    trainer.teacher = trainer.build_teacher()
    before = agreement(trainer)
    trainer.train()
    after = agreement(trainer)
    trainer.set_model_mode("train")  # the teacher is not registered: it stays frozen in eval mode
    assert not trainer.teacher.training and not trainer.teacher.model.image_encoder.training
    assert all(p.grad is None and not p.requires_grad for p in trainer.teacher.parameters())
    base = summarize(trainer.protocol, trainer._evaluations)["base"]["accuracy"]
    chance_base = 100 / (N_CLASSES // 2)
    print(f"teacher base {teacher_base:.1f}%, agreement {before:.2f} -> {after:.2f}, student base {base:.1f}%")
    assert teacher_base > 1.5 * chance_base, teacher_base  # the teacher learned its (labeled) base classes
    assert after >= before + 0.1 and after > 2 / N_CLASSES, (before, after)
    assert base > chance_base, base
