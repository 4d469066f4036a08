"""CoCoOp on the demo data: trainable tensors (upstream's formula), per-image conditioning, training, checkpoint reload."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.conftest import make_tiny_demo, run_tiny, sgd_losses
from tools.make_tiny_clip import TINY_CLIP_SPECS
from trainers.cocoop import CoCoOpPromptLearner

TINY = TINY_CLIP_SPECS["student"]  # embed (= vision output) dim v = 512, text width d = 64
UPSTREAM_KEYS = ["ctx"] + [f"meta_net.{layer}.{p}" for layer in ("linear1", "linear2") for p in ("weight", "bias")]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("cocoop"), layers=2, seed=1)


def run(assets, out, *opts: str, flags: tuple[str, ...] = ("--no-train",)):
    return run_tiny(assets, "CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1", out, *opts, flags=flags)


def one_batch(trainer, size: int = 4):
    """A fixed batch of training images (transformed once) with different labels."""
    dataset = trainer.train_loader_x.dataset
    by_label = {}
    for i in range(len(dataset)):
        by_label.setdefault(dataset.data_source[i].label, i)
    items = [dataset[i] for i in list(by_label.values())[:size]]
    images = torch.stack([item["img"] for item in items]).to(trainer.device)
    return images, torch.tensor([item["label"] for item in items], device=trainer.device)


def expected_trainable(n_ctx: int, v: int, d: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        ("prompt_learner.ctx", (n_ctx, d)),
        ("prompt_learner.meta_net.linear1.weight", (v // 16, v)),
        ("prompt_learner.meta_net.linear1.bias", (v // 16,)),
        ("prompt_learner.meta_net.linear2.weight", (d, v // 16)),
        ("prompt_learner.meta_net.linear2.bias", (d,)),
    ]


def test_trainable_tensors_follow_the_spec_formula(assets, tmp_path):
    trainer = run(assets, tmp_path)
    v, d, n_ctx = TINY["embed_dim"], TINY["text_width"], 4  # "a photo of a" -> 4 context tokens
    trainable = [(n, tuple(p.shape)) for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable == expected_trainable(n_ctx, v, d)
    assert sum(p.numel() for p in trainer.model.parameters() if p.requires_grad) == (
        n_ctx * d + (v * v // 16 + v // 16) + (v // 16 * d + d)
    )
    assert list(trainer.model_state_dict("prompt_learner")) == UPSTREAM_KEYS  # upstream key names, no buffers
    assert [type(m) for m in trainer.model.prompt_learner.meta_net] == [nn.Linear, nn.ReLU, nn.Linear]

    images, labels = one_batch(trainer)
    loss, _ = trainer.compute_loss(images, labels)
    loss.backward()
    for name, p in trainer.model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name  # frozen CLIP gets no gradient, every trainable one does


def test_vit_b16_widths_give_35360_parameters():
    """Upstream's count for ViT-B/16 (vis_dim 512 -> 32 -> text width 512, 4 ctx), on a stand-in with its widths."""

    class StandIn(nn.Module):  # what the prompt learner reads from a CLIP: embeddings, ln_final, visual.output_dim
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(49408, 512)
            self.positional_embedding = nn.Parameter(torch.zeros(77, 512))
            self.ln_final = nn.LayerNorm(512)
            self.visual = nn.Module()
            self.visual.output_dim = 512

    learner = CoCoOpPromptLearner(StandIn(), ["cat", "dog"], n_ctx=16, ctx_init="a photo of a")
    shapes = [(f"prompt_learner.{n}", tuple(p.shape)) for n, p in learner.named_parameters()]
    assert shapes == expected_trainable(4, 512, 512)
    assert sum(p.numel() for p in learner.parameters()) == 2_048 + 33_312 == 35_360


def test_each_image_gets_its_own_context(assets, tmp_path):
    trainer = run(assets, tmp_path)
    model = trainer.model.eval()
    images, _ = one_batch(trainer)
    with torch.no_grad():
        logits = model(images)
        features = F.normalize(model.image_encoder(images), dim=-1)
        ctx = model.prompt_learner.conditional_ctx(features)
        # ctx_i = ctx + pi_i, the same bias on every context token
        bias = model.prompt_learner.meta_net(features)
        torch.testing.assert_close(ctx, model.prompt_learner.ctx.unsqueeze(0) + bias.unsqueeze(1))
        assert not torch.allclose(ctx[0], ctx[1])
        one_by_one = torch.cat([model(images[i : i + 1]) for i in range(len(images))])
        # logits_i = scale * f_i @ t_i^T with the text features of image i's prompts (scale = exp(ln 100))
        prompts = model.prompt_learner(ctx[2])
        text = F.normalize(model.text_encoder(prompts, model.prompt_learner.tokenized_prompts), dim=-1)
        torch.testing.assert_close(logits[2], model.logit_scale.exp() * features[2] @ text.t())
    assert logits.shape == (4, 6)
    torch.testing.assert_close(logits, one_by_one)  # no mixing between the images of a batch


def test_a_few_steps_on_one_batch_lower_the_loss(assets, tmp_path):
    trainer = run(assets, tmp_path)
    images, labels = one_batch(trainer)
    losses = sgd_losses(trainer, images, labels, [p for p in trainer.model.parameters() if p.requires_grad])
    assert losses[-1] < losses[0], losses


def test_save_load_eval_gives_identical_logits(assets, tmp_path):
    trained = run(assets, tmp_path / "train", flags=())
    saved = torch.load(tmp_path / "train" / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert list(saved["state_dict"]) == UPSTREAM_KEYS
    evaluated = run(
        assets, tmp_path / "eval", flags=("--eval-only", "--model-dir", str(tmp_path / "train"), "--load-epoch", "1")
    )
    for key, value in trained.model_state_dict("prompt_learner").items():
        torch.testing.assert_close(evaluated.model_state_dict("prompt_learner")[key], value, rtol=0, atol=0)
    images, _ = one_batch(trained)
    with torch.no_grad():
        a, b = trained.model.eval()(images), evaluated.model.eval()(images)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
