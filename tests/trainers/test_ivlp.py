"""IVLP on the demo data: trainable tensors by upstream's formula, training, checkpoint round trip, language-only."""

from __future__ import annotations

import pytest
import torch

from dassl.config import get_cfg_default, merge_cfg_from_file
from tests.conftest import REPO_ROOT, forward_backward_on_one_batch, make_tiny_demo, run_tiny
from tools.make_tiny_clip import TINY_CLIP_SPECS
from trainers.backbone import load_clip, set_token_layout
from trainers.config import extend_cfg

TEXT_WIDTH = TINY_CLIP_SPECS["student"]["text_width"]  # d_t
VISION_WIDTH = TINY_CLIP_SPECS["student"]["vision_width"]  # d_v
CONFIGS = REPO_ROOT / "configs" / "trainers" / "IVLP"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("ivlp"), layers=4, text_layers=4, seed=21)


def run(assets, out, *opts: str, config: str = "vit_b16_c2_ep20_batch4_4+4ctx", cli: tuple[str, ...] = ()):
    return run_tiny(assets, "IVLP", f"IVLP/{config}", out, *opts, flags=cli)


def depth_opts(n_t: int, n_v: int, j_t: int, j_v: int) -> tuple[str, ...]:
    return (
        "TRAINER.IVLP.N_CTX_TEXT", str(n_t), "TRAINER.IVLP.N_CTX_VISION", str(n_v),
        "TRAINER.IVLP.PROMPT_DEPTH_TEXT", str(j_t), "TRAINER.IVLP.PROMPT_DEPTH_VISION", str(j_v),
    )  # fmt: skip


@pytest.mark.parametrize("n_t, n_v, j_t, j_v", [(4, 4, 3, 3), (2, 2, 4, 4), (2, 4, 1, 2), (4, 0, 4, 0)])
def test_trainable_tensors_follow_the_formula(assets, tmp_path, n_t, n_v, j_t, j_v):
    trainer = run(assets, tmp_path, *depth_opts(n_t, n_v, j_t, j_v), cli=("--no-train",))
    trainable = {n: tuple(p.shape) for n, p in trainer.model.named_parameters() if p.requires_grad}
    expected = {"prompt_learner.ctx": (n_t, TEXT_WIDTH)}
    expected |= {f"text_prompts.prompts.layer{i}": (n_t, TEXT_WIDTH) for i in range(1, j_t)}
    expected |= {f"vision_prompts.prompts.layer{i}": (n_v, VISION_WIDTH) for i in range(j_v)}
    assert trainable == expected
    count = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert count == n_t * TEXT_WIDTH + (j_t - 1) * n_t * TEXT_WIDTH + j_v * n_v * VISION_WIDTH
    # every trainable tensor has an upstream name (checkpoint import/export)
    key_map = trainer.upstream_key_map()
    assert sorted(key_map.values()) == sorted(expected)
    assert ("image_encoder.VPT" in key_map) == (j_v >= 1)
    assert all(f"text_encoder.transformer.resblocks.{i}.VPT_shallow" in key_map for i in range(1, j_t))


def test_ivlp_family_init_keeps_the_whole_phrase(assets, tmp_path):
    trainer = run(assets, tmp_path, *depth_opts(2, 2, 3, 3), cli=("--no-train",))
    learner = trainer.model.prompt_learner
    assert learner.n_ctx == 2 and learner.prompts_text[0].startswith("a photo of a ")  # ctx <- "a photo"


def test_training_lowers_the_loss_and_frozen_weights_get_no_gradient(assets, tmp_path):
    trainer = run(
        assets, tmp_path, *depth_opts(4, 4, 3, 3), "OPTIM.WARMUP_EPOCH", "0", "OPTIM.LR", "0.01",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "8", cli=("--no-train",),
    )  # fmt: skip
    losses = forward_backward_on_one_batch(trainer)  # also: gradients reach exactly the trainable tensors
    assert losses[-1] < losses[0], losses


def test_checkpoint_round_trip_gives_identical_logits(assets, tmp_path):
    trained = run(assets, tmp_path / "train", *depth_opts(4, 4, 3, 3))
    saved = torch.load(tmp_path / "train" / "VLPromptLearner" / "model.pth.tar-1", weights_only=True)
    trainable = {n for n, p in trained.model.named_parameters() if p.requires_grad}
    assert set(saved["state_dict"]) == trainable  # no backbone, no token buffers
    evaluated = run(
        assets, tmp_path / "eval", *depth_opts(4, 4, 3, 3),
        cli=("--eval-only", "--model-dir", str(tmp_path / "train"), "--load-epoch", "1"),
    )  # fmt: skip
    images = torch.randn(3, 3, 32, 32, device=trained.device)
    torch.testing.assert_close(
        evaluated.model_inference(images), trained.model_inference(images), rtol=0, atol=0
    )


def test_language_only_leaves_the_vision_tower_untouched(assets, tmp_path):
    trainer = run(
        assets, tmp_path, "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "3",
        config="vit_b16_c2_ep5_batch4_4ctx_language_only", cli=("--no-train",),
    )  # fmt: skip
    model = trainer.model
    assert not any(n.startswith("vision_prompts.") for n, _ in model.named_parameters())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 3 * 4 * TEXT_WIDTH
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.image_encoder.modules())
    plain = set_token_layout(load_clip("ViT-B/16", str(assets[1])), trainer.cfg.MODEL.BACKBONE.TOKEN_LAYOUT)
    plain = plain.to(trainer.device).eval()
    images = torch.randn(2, 3, 32, 32, device=trainer.device)
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), plain.visual(images))


@pytest.mark.parametrize(
    "opts, message",
    [
        (("TRAINER.IVLP.PROMPT_DEPTH_TEXT", "0"), "PROMPT_DEPTH_TEXT must be >= 1"),
        (("TRAINER.IVLP.PROMPT_DEPTH_VISION", "-1"), "PROMPT_DEPTH_VISION must be >= 0"),
        (("TRAINER.IVLP.N_CTX_VISION", "0"), "needs N_CTX_VISION >= 1"),
    ],
)
def test_impossible_depths_are_refused(assets, tmp_path, opts, message):
    with pytest.raises(ValueError, match=message):
        run(assets, tmp_path, *opts, cli=("--no-train",))


@pytest.mark.parametrize(
    "config, lr, epochs, ctx, depths",
    [
        ("vit_b16_c2_ep20_batch4_4+4ctx", 0.0025, 20, (4, 4), (9, 9)),
        ("vit_b16_c2_ep5_batch4_2+2ctx", 0.0035, 5, (2, 2), (12, 12)),
        ("vit_b16_c2_ep5_batch4_4ctx_language_only", 0.0025, 5, (4, 0), (12, 0)),
    ],
)
def test_shipped_configs_have_the_upstream_values(config, lr, epochs, ctx, depths):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_cfg_from_file(cfg, str(CONFIGS / f"{config}.yaml"))
    assert (lr, epochs, 4) == (cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.DATALOADER.TRAIN_X.BATCH_SIZE)
    ivlp = cfg.TRAINER.IVLP
    assert ctx == (ivlp.N_CTX_TEXT, ivlp.N_CTX_VISION)
    assert depths == (ivlp.PROMPT_DEPTH_TEXT, ivlp.PROMPT_DEPTH_VISION)
    assert (ivlp.CTX_INIT, ivlp.PREC) == ("a photo of a", "fp16")


def test_an_upstream_full_checkpoint_loads_and_a_missing_prompt_is_named(assets, tmp_path):
    """Upstream files: Dassl dict, upstream key names, the whole backbone and token buffers alongside."""
    from trainers.base import CheckpointMismatchError

    trained = run(assets, tmp_path / "train", *depth_opts(4, 4, 3, 3))
    ours = torch.load(tmp_path / "train" / "VLPromptLearner" / "model.pth.tar-1", weights_only=True)["state_dict"]
    inverse = {v: k for k, v in trained.model.upstream_key_map().items()}
    upstream = {inverse[k]: v.half() for k, v in ours.items()}
    upstream["prompt_learner.token_prefix"] = torch.zeros(6, 1, 64)
    upstream["image_encoder.conv1.weight"] = torch.zeros(128, 3, 16, 16)  # a frozen backbone key
    folder = tmp_path / "upstream" / "VLPromptLearner"
    folder.mkdir(parents=True)
    torch.save({"state_dict": upstream, "epoch": 1, "optimizer": None, "scheduler": None}, folder / "model.pth.tar-1")
    evaluated = run(
        assets, tmp_path / "eval", *depth_opts(4, 4, 3, 3),
        cli=("--eval-only", "--model-dir", str(tmp_path / "upstream"), "--load-epoch", "1"),
    )  # fmt: skip
    for key, value in ours.items():
        torch.testing.assert_close(evaluated.model.state_dict()[key], value.half().float(), rtol=0, atol=0)

    del upstream["text_encoder.transformer.resblocks.2.VPT_shallow"]
    torch.save({"state_dict": upstream, "epoch": 1}, folder / "model.pth.tar-1")
    with pytest.raises(CheckpointMismatchError, match=r"text_prompts\.prompts\.layer2"):
        run(
            assets, tmp_path / "eval2", *depth_opts(4, 4, 3, 3),
            cli=("--eval-only", "--model-dir", str(tmp_path / "upstream"), "--load-epoch", "1"),
        )  # fmt: skip
