"""CoOp on the demo data: trainable tensors, precision modes, trainable-only checkpoints, eval-only reload."""

from __future__ import annotations

import json
import math

import pytest
import torch

import train
from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo
from trainers.base import CheckpointMismatchError


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("coop"), layers=2, seed=1)


def run(assets, out, *opts: str, eval_only: tuple[str, ...] = ()):
    data, ckpt = assets
    argv = [
        "--root", str(data), "--seed", "1", "--trainer", "CoOp",
        "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
        "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"),
        "--output-dir", str(out), *eval_only,
        "MODEL.BACKBONE.PATH", str(ckpt), "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "2",
        "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "4", "DATASET.SUBSAMPLE_CLASSES", "base",
        "OPTIM.LR", "0.05", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "TRAIN.PRINT_FREQ", "1",
        "USE_CUDA", USE_CUDA_OPT, *opts,
    ]  # fmt: skip
    return train.run(train.build_parser().parse_args(argv))


@pytest.mark.parametrize("prec", ["fp32", "fp16", "bf16", "amp"])
def test_every_precision_trains_without_nan_and_keeps_fp32_masters(assets, tmp_path, prec, capsys):
    trainer = run(assets, tmp_path / prec, "TRAINER.COOP.PREC", prec, "TRAINER.COOP.CTX_INIT", "a photo of a")
    out = capsys.readouterr().out
    losses = [float(v) for v in __import__("re").findall(r"loss ([\d.eE+-]+|nan|inf) \(", out)]
    assert losses and all(math.isfinite(v) for v in losses)
    assert trainer.model.prompt_learner.ctx.dtype == torch.float32
    expected_storage = {"fp32": torch.float32, "amp": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[prec]
    assert trainer.model.image_encoder.conv1.weight.dtype == expected_storage
    assert trainer.model.image_encoder.ln_pre.weight.dtype == torch.float32  # norms stay fp32, as upstream
    accuracy = json.loads((tmp_path / prec / "results.json").read_text())["final"]["accuracy"]
    assert 0.0 <= accuracy <= 100.0


def test_trainable_tensors_and_checkpoint_content(assets, tmp_path):
    trainer = run(assets, tmp_path / "a", "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "16")
    trainable = [(n, tuple(p.shape)) for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable == [("prompt_learner.ctx", (16, 64))]  # random init, 16 generic context vectors
    assert all(p.grad is None for n, p in trainer.model.named_parameters() if not p.requires_grad)
    saved = torch.load(tmp_path / "a" / "prompt_learner" / "model.pth.tar-2", weights_only=True)
    assert list(saved["state_dict"]) == ["ctx"]  # upstream key name, no backbone, no token buffers
    assert saved["meta"]["classnames"] == trainer.dm.dataset.classnames
    assert saved["meta"]["backbone"] == "ViT-B/16"


def test_eval_only_reload_gives_identical_logits(assets, tmp_path):
    trained = run(assets, tmp_path / "train", "TRAINER.COOP.PREC", "fp32")
    evaluated = run(
        assets,
        tmp_path / "eval",
        "TRAINER.COOP.PREC", "fp32", "DATASET.SUBSAMPLE_CLASSES", "new",
        eval_only=("--eval-only", "--model-dir", str(tmp_path / "train"), "--load-epoch", "2"),
    )  # fmt: skip
    torch.testing.assert_close(evaluated.model.prompt_learner.ctx, trained.model.prompt_learner.ctx, rtol=0, atol=0)
    images = torch.randn(3, 3, 32, 32, device=trained.device)
    with torch.no_grad():
        a = trained.model.image_encoder(images)
        b = evaluated.model.image_encoder(images)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert evaluated.dm.dataset.classnames != trained.dm.dataset.classnames  # novel classes, rebuilt tokens


def test_checkpoint_of_another_config_is_refused(assets, tmp_path):
    run(assets, tmp_path / "train", "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "8")
    with pytest.raises(CheckpointMismatchError, match=r"wrong shape: ctx \(8, 64\) != \(16, 64\)"):
        run(
            assets,
            tmp_path / "eval",
            "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "16",
            eval_only=("--eval-only", "--model-dir", str(tmp_path / "train"), "--load-epoch", "2"),
        )  # fmt: skip
