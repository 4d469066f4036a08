"""VPT-deep on the demo data: vision-only trainable tensors, fixed class text features, training, checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dassl.config import get_cfg_default, merge_cfg_from_file
from tests.conftest import REPO_ROOT, forward_backward_on_one_batch, make_tiny_demo, run_tiny
from tools.make_tiny_clip import TINY_CLIP_SPECS
from trainers.backbone import load_clip
from trainers.config import extend_cfg
from trainers.prompting import tokenize

VISION_WIDTH = TINY_CLIP_SPECS["student"]["vision_width"]  # d_v


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("vpt"), layers=4, text_layers=4, seed=22)


def run(assets, out, *opts: str, cli: tuple[str, ...] = ()):
    return run_tiny(assets, "VPT", "VPT/vit_b16_c2_ep5_batch4_4", out, "TRAINER.VPT.PROMPT_DEPTH_VISION", "3", *opts, flags=cli)


@pytest.mark.parametrize("n_v, j_v", [(8, 3), (2, 1), (4, 4)])
def test_trainable_tensors_follow_the_formula(assets, tmp_path, n_v, j_v):
    trainer = run(
        assets, tmp_path, "TRAINER.VPT.N_CTX_VISION", str(n_v), "TRAINER.VPT.PROMPT_DEPTH_VISION", str(j_v),
        cli=("--no-train",),
    )  # fmt: skip
    trainable = {n: tuple(p.shape) for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable == {f"vision_prompts.prompts.layer{i}": (n_v, VISION_WIDTH) for i in range(j_v)}
    assert sum(p.numel() for p in trainer.model.parameters() if p.requires_grad) == j_v * n_v * VISION_WIDTH
    key_map = trainer.upstream_key_map()
    assert set(key_map) == {"image_encoder.VPT"} | {
        f"image_encoder.transformer.resblocks.{i}.VPT_shallow" for i in range(1, j_v)
    }
    assert sorted(key_map.values()) == sorted(trainable)


def test_class_text_features_are_the_frozen_clips_and_not_saved(assets, tmp_path):
    trainer = run(assets, tmp_path, "TRAINER.VPT.CTX_INIT", "ignored words", cli=("--no-train",))
    model = trainer.model
    plain = load_clip("ViT-B/16", str(assets[1])).to(trainer.device).eval()
    names = trainer.dm.dataset.classnames
    with torch.no_grad():
        expected = F.normalize(
            plain.encode_text(tokenize([f"a photo of a {c}." for c in names]).to(trainer.device)), dim=-1
        )
    assert torch.equal(model.text_features, expected)
    assert not model.text_features.requires_grad
    assert "text_features" not in model.state_dict()
    assert not any(n.startswith(("transformer.", "token_embedding")) for n, _ in model.named_parameters())


def test_depth_zero_is_refused(assets, tmp_path):
    with pytest.raises(ValueError, match="PROMPT_DEPTH_VISION must be >= 1"):
        run(assets, tmp_path, "TRAINER.VPT.PROMPT_DEPTH_VISION", "0", cli=("--no-train",))


def test_prec_fp16_runs_in_fp32_as_upstream(assets, tmp_path, capsys):
    trainer = run(assets, tmp_path, "TRAINER.VPT.PREC", "fp16", cli=("--no-train",))
    assert trainer.precision.prec == "fp32" and trainer.cfg.TRAINER.VPT.PREC == "fp16"
    assert trainer.model.image_encoder.conv1.weight.dtype == torch.float32
    assert "VPT runs in fp32 as upstream" in capsys.readouterr().out


def test_prec_is_honoured_when_asked(assets, tmp_path):
    trainer = run(assets, tmp_path, "TRAINER.VPT.PREC", "fp16", "TRAINER.VPT.HONOUR_PREC", "True", cli=("--no-train",))
    model = trainer.model
    assert model.image_encoder.conv1.weight.dtype == torch.float16  # frozen weights stored in fp16
    assert model.vision_prompts.prompts["layer0"].dtype == torch.float32  # fp32 masters
    logits = trainer.model_inference(torch.randn(2, 3, 32, 32, device=trainer.device))
    assert logits.shape == (2, 6) and torch.isfinite(logits).all()


def test_training_lowers_the_loss_and_frozen_weights_get_no_gradient(assets, tmp_path):
    trainer = run(
        assets, tmp_path, "OPTIM.WARMUP_EPOCH", "0", "OPTIM.LR", "0.01", "DATALOADER.TRAIN_X.BATCH_SIZE", "8",
        cli=("--no-train",),
    )  # fmt: skip
    losses = forward_backward_on_one_batch(trainer)  # also: gradients reach exactly the trainable tensors
    assert losses[-1] < losses[0], losses


def test_checkpoint_round_trip_gives_identical_logits(assets, tmp_path):
    trained = run(assets, tmp_path / "train")
    saved = torch.load(tmp_path / "train" / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert set(saved["state_dict"]) == {f"vision_prompts.prompts.layer{i}" for i in range(3)}
    evaluated = run(
        assets,
        tmp_path / "eval",
        cli=("--eval-only", "--model-dir", str(tmp_path / "train"), "--load-epoch", "1"),
    )
    images = torch.randn(3, 3, 32, 32, device=trained.device)
    torch.testing.assert_close(
        evaluated.model_inference(images), trained.model_inference(images), rtol=0, atol=0
    )


def test_shipped_config_has_the_upstream_values():
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_cfg_from_file(cfg, str(REPO_ROOT / "configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml"))
    assert (cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.DATALOADER.TRAIN_X.BATCH_SIZE) == (0.0025, 5, 4)
    assert (cfg.TRAINER.VPT.N_CTX_VISION, cfg.TRAINER.VPT.PROMPT_DEPTH_VISION, cfg.TRAINER.VPT.PREC) == (
        8,
        12,
        "fp16",
    )
