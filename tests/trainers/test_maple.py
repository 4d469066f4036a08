"""MaPLe on the demo data: trainable tensors by upstream's formula, the vision-language coupling as inserted in
every block, identical initial projections, training, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from dassl.config import get_cfg_default, merge_cfg_from_file
from tests.conftest import REPO_ROOT, forward_backward_on_one_batch, make_tiny_demo, run_tiny
from tools.make_tiny_clip import TINY_CLIP_SPECS
from trainers.config import extend_cfg

TEXT_WIDTH = TINY_CLIP_SPECS["student"]["text_width"]  # d_t
VISION_WIDTH = TINY_CLIP_SPECS["student"]["vision_width"]  # d_v


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("maple"), layers=4, text_layers=4, seed=23)


def run(assets, out, *opts: str, cli: tuple[str, ...] = ()):
    return run_tiny(assets, "MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx", out, "TRAINER.MAPLE.PROMPT_DEPTH", "3", *opts, flags=cli)


@pytest.mark.parametrize("n, j", [(2, 3), (2, 1), (4, 4)])
def test_trainable_tensors_follow_the_formula(assets, tmp_path, n, j):
    opts = ("TRAINER.MAPLE.N_CTX", str(n), "TRAINER.MAPLE.PROMPT_DEPTH", str(j))
    trainer = run(assets, tmp_path, *opts, cli=("--no-train",))
    trainable = {k: tuple(p.shape) for k, p in trainer.model.named_parameters() if p.requires_grad}
    expected = {
        "prompt_learner.ctx": (n, TEXT_WIDTH),
        "prompt_learner.proj.weight": (VISION_WIDTH, TEXT_WIDTH),
        "prompt_learner.proj.bias": (VISION_WIDTH,),
    }
    for i in range(j - 1):
        expected[f"prompt_learner.compound_prompts_text.{i}"] = (n, TEXT_WIDTH)
        expected[f"prompt_learner.compound_prompt_projections.{i}.weight"] = (VISION_WIDTH, TEXT_WIDTH)
        expected[f"prompt_learner.compound_prompt_projections.{i}.bias"] = (VISION_WIDTH,)
    assert trainable == expected
    linear = TEXT_WIDTH * VISION_WIDTH + VISION_WIDTH
    count = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert count == n * TEXT_WIDTH + linear + (j - 1) * n * TEXT_WIDTH + (j - 1) * linear
    # our names are upstream's (MultiModalPromptLearner/ state_dict keys)
    assert trainer.upstream_key_map() == {k: k for k in expected}


def test_compound_projections_start_identical_and_ctx_follows_the_ivlp_init(assets, tmp_path):
    trainer = run(assets, tmp_path, "TRAINER.MAPLE.PROMPT_DEPTH", "4", cli=("--no-train",))
    learner = trainer.model.prompt_learner
    first, *rest = learner.compound_prompt_projections
    assert len(rest) == 2
    for other in rest:
        assert other is not first
        assert torch.equal(other.weight, first.weight) and torch.equal(other.bias, first.bias)
    assert learner.n_ctx == 2 and learner.prompts_text[0].startswith("a photo of a ")  # ctx <- "a photo"


@pytest.mark.parametrize("depth", [3, 1])
def test_inserted_prompts_are_the_projected_text_prompts(assets, tmp_path, depth):
    trainer = run(assets, tmp_path, "TRAINER.MAPLE.PROMPT_DEPTH", str(depth), cli=("--no-train",))
    model, learner = trainer.model, trainer.model.prompt_learner
    n = learner.n_ctx
    seen_vision, seen_text = {}, {}

    def capture(store: dict, layer: int, positions: slice, batch_first: bool = True):
        def hook(module, args):  # returns None: only looks
            tokens = args[0] if batch_first else args[0].transpose(0, 1)  # as (batch, tokens, width)
            store[layer] = tokens[:, positions].clone()

        return hook

    # registered after the model's own hooks, so they see the tokens each block actually receives (ln_pre: always
    # batch-first; the blocks: in the configured MODEL.BACKBONE.TOKEN_LAYOUT)
    visual = model.image_encoder
    visual.ln_pre.register_forward_pre_hook(capture(seen_vision, 0, slice(-n, None)))
    for i in range(1, depth):
        visual.transformer.resblocks[i].register_forward_pre_hook(
            capture(seen_vision, i, slice(-n, None), visual.transformer.batch_first)
        )
        text = model.text_encoder.transformer
        text.resblocks[i].register_forward_pre_hook(capture(seen_text, i, slice(1, 1 + n), text.batch_first))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32, device=trainer.device))
        assert torch.equal(seen_vision[0], learner.proj(learner.ctx).expand(2, -1, -1))
        for i in range(1, depth):
            p_i = learner.compound_prompts_text[i - 1]
            v_i = learner.compound_prompt_projections[i - 1](p_i)
            assert torch.equal(seen_vision[i], v_i.expand(2, -1, -1))
            assert torch.equal(seen_text[i], p_i.expand(learner.n_cls, -1, -1))
    assert sorted(seen_vision) == list(range(depth)) and sorted(seen_text) == list(range(1, depth))


def test_training_lowers_the_loss_and_frozen_weights_get_no_gradient(assets, tmp_path):
    trainer = run(
        assets, tmp_path, "OPTIM.WARMUP_EPOCH", "0", "OPTIM.LR", "0.01", "DATALOADER.TRAIN_X.BATCH_SIZE", "8",
        cli=("--no-train",),
    )  # fmt: skip
    losses = forward_backward_on_one_batch(trainer)  # also: gradients reach exactly the trainable tensors
    # (the coupling: every text prompt and every projection gets a gradient)
    assert losses[-1] < losses[0], losses


def test_checkpoint_round_trip_gives_identical_logits(assets, tmp_path):
    trained = run(assets, tmp_path / "train")
    saved = torch.load(tmp_path / "train" / "MultiModalPromptLearner" / "model.pth.tar-1", weights_only=True)
    trainable = {n for n, p in trained.model.named_parameters() if p.requires_grad}
    assert set(saved["state_dict"]) == trainable  # upstream key names; no backbone, no token buffers
    evaluated = run(
        assets,
        tmp_path / "eval",
        cli=("--eval-only", "--model-dir", str(tmp_path / "train"), "--load-epoch", "1"),
    )
    images = torch.randn(3, 3, 32, 32, device=trained.device)
    torch.testing.assert_close(
        evaluated.model_inference(images), trained.model_inference(images), rtol=0, atol=0
    )


def test_depth_zero_is_refused(assets, tmp_path):
    with pytest.raises(ValueError, match="PROMPT_DEPTH must be >= 1"):
        run(assets, tmp_path, "TRAINER.MAPLE.PROMPT_DEPTH", "0", cli=("--no-train",))


@pytest.mark.parametrize(
    "config, lr, epochs, depth",
    [
        ("vit_b16_c2_ep5_batch4_2ctx", 0.0035, 5, 9),
        ("vit_b16_c2_ep5_batch4_2ctx_cross_datasets", 0.0026, 2, 3),
    ],
)
def test_shipped_configs_have_the_upstream_values(config, lr, epochs, depth):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_cfg_from_file(cfg, str(REPO_ROOT / "configs" / "trainers" / "MaPLe" / f"{config}.yaml"))
    assert (lr, epochs, 4) == (cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.DATALOADER.TRAIN_X.BATCH_SIZE)
    maple = cfg.TRAINER.MAPLE
    assert (2, "a photo of a", "fp16", depth) == (maple.N_CTX, maple.CTX_INIT, maple.PREC, maple.PROMPT_DEPTH)
    assert (cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE, cfg.OPTIM.WARMUP_CONS_LR) == (1, "constant", 1e-5)
