"""KgCoOp on the demo data: the context rule, the hand-crafted anchor, the loss, training and checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import make_tiny_demo, run_tiny, sgd_losses
from tools.make_tiny_clip import TINY_CLIP_SPECS
from trainers.backbone import load_clip
from trainers.kgcoop import kg_loss, kgcoop_template
from trainers.prompting import class_text_features, tokenize
from trainers.templates import CUSTOM_TEMPLATES

D = TINY_CLIP_SPECS["student"]["text_width"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("kgcoop"), layers=2, seed=1)


def run(assets, out, *opts: str, flags: tuple[str, ...] = ("--no-train",)):
    return run_tiny(assets, "KgCoOp", "KgCoOp/vit_b16_ep100_ctxv1", out, "TRAINER.COOP.W", "8.0", *opts, flags=flags)


def fixed_batch(trainer):
    """The 12 training images (transformed once) and their labels."""
    dataset = trainer.train_loader_x.dataset
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([item["img"] for item in items]).to(trainer.device)
    return images, torch.tensor([item["label"] for item in items], device=trainer.device)


def perturb_context(trainer, std: float = 0.5) -> None:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ctx = trainer.model.prompt_learner.ctx
        ctx.add_(std * torch.randn(ctx.shape, generator=generator).to(ctx.device))


def test_templates_are_the_zero_shot_table_except_dtd():
    assert kgcoop_template("DescribableTextures") == "a photo of a {}, a type of texture."
    for name, template in CUSTOM_TEMPLATES.items():
        if name != "DescribableTextures":
            assert kgcoop_template(name) == template
    assert kgcoop_template("Demo") == "a photo of a {}."


def test_context_rule_and_trainable_tensors(assets, tmp_path):
    # any non-empty CTX_INIT means "a photo of a" (n_ctx 4); CSC is ignored then, as upstream
    trainer = run(assets, tmp_path / "a", "TRAINER.COOP.CTX_INIT", "any other words", "TRAINER.COOP.CSC", "True")
    trainable = [(n, tuple(p.shape)) for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable == [("prompt_learner.ctx", (4, D))]
    assert list(trainer.model_state_dict("prompt_learner")) == ["ctx"]
    clip = load_clip("ViT-B/16", str(assets[1]))
    with torch.no_grad():
        phrase = clip.token_embedding(tokenize("a photo of a"))[0, 1:5].float()
    torch.testing.assert_close(trainer.model.prompt_learner.ctx.detach().cpu(), phrase, rtol=0, atol=0)
    assert trainer.model.prompt_learner.prompts_text[0].startswith("a photo of a ")

    # empty CTX_INIT: N_CTX random vectors, class-specific with CSC
    opts = ("TRAINER.COOP.CTX_INIT", "", "TRAINER.COOP.N_CTX", "8", "TRAINER.COOP.CSC", "True")
    trainer = run(assets, tmp_path / "b", *opts)
    assert [(n, tuple(p.shape)) for n, p in trainer.model.named_parameters() if p.requires_grad] == [
        ("prompt_learner.ctx", (6, 8, D))
    ]
    # nothing of upstream's dead weights is built
    assert not any(k in n for n, _ in trainer.model.named_parameters() for k in ("bias_vectors", "meta_net", "adapter"))

    images, labels = fixed_batch(trainer)
    loss, _ = trainer.compute_loss(images, labels)
    loss.backward()
    for name, p in trainer.model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name


def test_anchor_is_the_frozen_clip_on_the_kgcoop_template(assets, tmp_path):
    trainer = run(assets, tmp_path)
    clip = load_clip("ViT-B/16", str(assets[1])).to(trainer.device)
    expected = class_text_features(clip, trainer.dm.dataset.classnames, ["a photo of a {}."])
    anchor = trainer.model.clip_text_features
    assert anchor.shape == (6, 512)
    torch.testing.assert_close(anchor, expected, rtol=0, atol=0)
    assert "clip_text_features" not in trainer.model.state_dict()  # rebuilt from the class names, never saved
    # before training, the learned prompt "a photo of a {class}." is the template itself: L_kg = 0
    assert kg_loss(trainer.model.text_features(), anchor).item() == pytest.approx(0.0, abs=1e-6)


def test_loss_is_ce_plus_w_times_one_minus_mean_cosine(assets, tmp_path):
    trainer = run(assets, tmp_path)
    perturb_context(trainer)
    images, labels = fixed_batch(trainer)
    loss, summary = trainer.compute_loss(images, labels)

    model = trainer.model
    with torch.no_grad():
        prompts = model.prompt_learner()
        text = model.text_encoder(prompts, model.prompt_learner.tokenized_prompts)
        text = text / text.norm(dim=-1, keepdim=True)
        image = model.image_encoder(images)
        image = image / image.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * image @ text.t()
        anchor = model.clip_text_features
        cos = (text * anchor).sum(dim=-1) / (text.norm(dim=-1) * anchor.norm(dim=-1))
        by_hand = F.cross_entropy(logits, labels) + 8.0 * (1 - cos.mean())
    assert summary["kg"] > 1e-3  # the perturbed context moved away from the anchor
    torch.testing.assert_close(loss.detach(), by_hand)
    assert summary["loss"] == pytest.approx(summary["ce"] + 8.0 * summary["kg"], rel=1e-5)


def test_a_few_steps_on_one_batch_lower_the_loss(assets, tmp_path):
    trainer = run(assets, tmp_path)
    perturb_context(trainer, std=0.1)
    images, labels = fixed_batch(trainer)
    losses = sgd_losses(trainer, images, labels, [trainer.model.prompt_learner.ctx])
    assert losses[-1] < losses[0], losses


def test_save_load_eval_gives_identical_logits(assets, tmp_path):
    trained = run(assets, tmp_path / "train", flags=())
    saved = torch.load(tmp_path / "train" / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert list(saved["state_dict"]) == ["ctx"]
    evaluated = run(
        assets, tmp_path / "eval", flags=("--eval-only", "--model-dir", str(tmp_path / "train"), "--load-epoch", "1")
    )
    a_ctx, b_ctx = trained.model.prompt_learner.ctx, evaluated.model.prompt_learner.ctx
    torch.testing.assert_close(b_ctx, a_ctx, rtol=0, atol=0)
    images, _ = fixed_batch(trained)
    with torch.no_grad():
        torch.testing.assert_close(evaluated.model(images), trained.model(images), rtol=0, atol=0)


def test_upstream_checkpoint_with_dead_weights_loads(assets, tmp_path):
    """Upstream files also hold bias_vectors, meta_net.linear1.* and the token buffers, in fp16, without val_result."""
    generator = torch.Generator().manual_seed(3)
    ctx = torch.randn(4, D, generator=generator).half()
    state_dict = {
        "ctx": ctx,
        "bias_vectors": torch.randn(1, D, generator=generator).half(),
        "meta_net.linear1.weight": torch.randn(D, D, generator=generator).half(),
        "meta_net.linear1.bias": torch.randn(D, generator=generator).half(),
        "token_prefix": torch.zeros(6, 1, D).half(),
        "token_suffix": torch.zeros(6, 72, D).half(),
    }
    folder = tmp_path / "upstream" / "prompt_learner"
    folder.mkdir(parents=True)
    upstream = {"state_dict": state_dict, "epoch": 100, "optimizer": None, "scheduler": None}  # no val_result
    torch.save(upstream, folder / "model.pth.tar-100")
    flags = ("--eval-only", "--model-dir", str(tmp_path / "upstream"), "--load-epoch", "100")
    evaluated = run(assets, tmp_path / "eval", flags=flags)
    learner = evaluated.model.prompt_learner
    torch.testing.assert_close(learner.ctx.detach().cpu(), ctx.float(), rtol=0, atol=0)
    assert learner.ctx.dtype == torch.float32
    assert learner.token_suffix.abs().sum() > 0  # token buffers were rebuilt, not loaded
