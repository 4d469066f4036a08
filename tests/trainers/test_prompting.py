"""The shared prompt machinery: parity with the original IVLP/PromptSRC encoders, hooks, chunking, init rules."""

from __future__ import annotations

import pytest
import torch

from tools.make_tiny_clip import make_tiny_clip
from trainers.backbone import build_clip_from_state_dict, load_clip
from trainers.prompting import (
    DeepPrompts,
    TextEncoder,
    TextPromptHooks,
    TextPromptLearner,
    VisionPromptHooks,
    format_trainable_report,
    freeze_all_but,
    tokenize,
    trainable_parameters,
)

GOLDEN_CLASSES = ["face", "leopard", "motorbike", "accordion", "airplane", "anchor", "ant", "barrel", "bass", "beaver"]


def rel_err(ours: torch.Tensor, golden: torch.Tensor) -> float:
    return ((ours - golden).abs().max() / golden.abs().max()).item()


@pytest.fixture(scope="module")
def tiny_clip():
    return build_clip_from_state_dict(make_tiny_clip("student", image_size=32, layers=4, text_layers=4, seed=2))


def test_promptsrc_features_match_the_original_implementation(golden_dir):
    g = golden_dir / "promptsrc"
    init = torch.load(g / "init.pt", weights_only=True)
    inputs = torch.load(g / "inputs.pt", weights_only=True)
    buffers = torch.load(g / "buffers.pt", weights_only=True)
    outputs = torch.load(g / "outputs.pt", weights_only=True)
    model = load_clip("ViT-L/14", str(golden_dir / "clip" / "ViT-L-14.pt"))

    learner = TextPromptLearner(model, GOLDEN_CLASSES, n_ctx=4, ctx_init="a photo of a", init_family="ivlp")
    assert torch.equal(learner.tokenized_prompts, buffers["tokenized_prompts"])
    assert torch.equal(learner.token_prefix, buffers["prompt_learner.token_prefix"])
    assert torch.equal(learner.token_suffix, buffers["prompt_learner.token_suffix"])

    vision, text = DeepPrompts(4, 64, depth=9, first_layer=0), DeepPrompts(4, 64, depth=9, first_layer=1)
    with torch.no_grad():
        learner.ctx.copy_(init["prompt_learner.ctx"])
        vision.prompts["layer0"].copy_(init["image_encoder.VPT"])
        for i in range(1, 9):
            vision.prompts[f"layer{i}"].copy_(init[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"])
            text.prompts[f"layer{i}"].copy_(init[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"])
    vision_hooks = VisionPromptHooks(model.visual, depth=9)
    text_hooks = TextPromptHooks(model.transformer, depth=9)
    encoder = TextEncoder(model)
    with torch.no_grad():
        with text_hooks.prompts(text.as_dict()):
            text_features = encoder(learner(), learner.tokenized_prompts)
        with vision_hooks.prompts(vision.as_dict()):
            image_features = model.visual(inputs["images"])
        zero_shot_image = model.visual(inputs["images"])  # same backbone, no prompts set
    assert rel_err(text_features, outputs["text_features_unnormalized"]) <= 5e-5
    assert rel_err(image_features, outputs["image_features_unnormalized"]) <= 5e-5
    assert rel_err(zero_shot_image, outputs["zs_image_features_unnormalized"]) <= 5e-5


def test_hooks_leave_the_backbone_untouched(tiny_clip):
    images = torch.randn(2, 3, 32, 32)
    tokens = tokenize(["a photo of a cat.", "a dog."])
    with torch.no_grad():
        before_image, before_text = tiny_clip.encode_image(images), tiny_clip.encode_text(tokens)
    names_before = [name for name, _ in tiny_clip.named_parameters()]

    depth_zero = VisionPromptHooks(tiny_clip.visual, depth=0)
    assert depth_zero._handles == []
    vision = VisionPromptHooks(tiny_clip.visual, depth=3)
    text = TextPromptHooks(tiny_clip.transformer, depth=3)
    with torch.no_grad():  # hooks attached, no prompts set: bit-identical
        assert torch.equal(tiny_clip.encode_image(images), before_image)
        assert torch.equal(tiny_clip.encode_text(tokens), before_text)
        prompts = DeepPrompts(2, 128, depth=3)
        with vision.prompts(prompts.as_dict()):
            assert not torch.equal(tiny_clip.encode_image(images), before_image)
    assert [name for name, _ in tiny_clip.named_parameters()] == names_before
    for hooks in (vision, text):
        hooks.remove()
    with torch.no_grad():
        assert torch.equal(tiny_clip.encode_image(images), before_image)


def test_vision_prompts_are_appended_and_replaced(tiny_clip):
    seen = {}
    blocks = tiny_clip.visual.transformer.resblocks
    hooks = VisionPromptHooks(tiny_clip.visual, depth=3)  # registered first, so the capture below sees its result
    handles = [blocks[i].register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, a[0].clone())) for i in range(4)]
    prompts = DeepPrompts(2, 128, depth=3)
    with torch.no_grad(), hooks.prompts(prompts.as_dict()):
        tiny_clip.visual(torch.randn(1, 3, 32, 32))
    for h in handles:
        h.remove()
    hooks.remove()
    assert seen[0].shape == (1, 1 + 4 + 2, 128)  # CLS + 2x2 patches + 2 prompts
    torch.testing.assert_close(seen[1][0, -2:], prompts.prompts["layer1"].detach(), rtol=0, atol=0)
    torch.testing.assert_close(seen[2][0, -2:], prompts.prompts["layer2"].detach(), rtol=0, atol=0)
    assert not torch.equal(seen[3][0, -2:], prompts.prompts["layer2"].detach())  # past the depth: carried forward


def test_chunked_text_encoding_equals_unchunked(tiny_clip):
    learner = TextPromptLearner(tiny_clip, [f"class {i}" for i in range(7)], n_ctx=4)
    full, chunked = TextEncoder(tiny_clip), TextEncoder(tiny_clip, chunk_size=3)
    features = full(learner(), learner.tokenized_prompts)
    (grad_full,) = torch.autograd.grad(features.square().sum(), learner.ctx)
    features_chunked = chunked(learner(), learner.tokenized_prompts)
    (grad_chunked,) = torch.autograd.grad(features_chunked.square().sum(), learner.ctx)
    assert rel_err(features_chunked, features) < 1e-6
    assert rel_err(grad_chunked, grad_full) < 1e-5  # relative to the largest gradient, as the golden rule


def test_context_init_families(tiny_clip):
    names = ["sea_lion", "cat"]
    coop = TextPromptLearner(tiny_clip, names, n_ctx=16, ctx_init="a photo of a", init_family="coop")
    assert coop.n_ctx == 4 and coop.ctx.shape == (4, 64)  # n_ctx from the phrase
    assert coop.prompts_text == ["a photo of a sea lion.", "a photo of a cat."]
    embedding = tiny_clip.token_embedding(tokenize("a photo of a"))[0, 1:5]
    torch.testing.assert_close(coop.ctx.detach(), embedding.detach())
    ivlp = TextPromptLearner(tiny_clip, names, n_ctx=2, ctx_init="a photo of a", init_family="ivlp")
    assert ivlp.ctx.shape == (2, 64) and ivlp.prompts_text[1] == "a photo of a cat."  # the phrase stays whole
    torch.testing.assert_close(ivlp.ctx.detach(), embedding[:2].detach())
    random_ivlp = TextPromptLearner(tiny_clip, names, n_ctx=8, ctx_init="a photo of a", init_family="ivlp")
    assert random_ivlp.prompts_text[0].startswith("X X X X X X X X ")
    csc = TextPromptLearner(tiny_clip, names, n_ctx=16, csc=True)
    assert csc.ctx.shape == (2, 16, 64)
    csc_phrase = TextPromptLearner(tiny_clip, names, n_ctx=16, ctx_init="a photo of a", csc=True)
    assert csc_phrase.ctx.shape == (4, 64)  # upstream ignores CSC when the context comes from a phrase
    assert coop.ctx.dtype == torch.float32  # fp32 master


@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_class_token_position_places_the_name(tiny_clip, position):
    learner = TextPromptLearner(tiny_clip, ["sea lion", "cat"], n_ctx=4, class_token_position=position)
    prompts = learner()
    assert prompts.shape == (2, 77, 64)
    name_tokens = tiny_clip.token_embedding(tokenize("sea lion"))[0, 1:3]
    start = {"end": 5, "middle": 3, "front": 1}[position]
    torch.testing.assert_close(prompts[0, start : start + 2], name_tokens, rtol=0, atol=0)
    torch.testing.assert_close(prompts[:, 0], learner.token_prefix[:, 0], rtol=0, atol=0)  # SOS stays first


def test_freeze_and_trainable_report(tiny_clip):
    learner = TextPromptLearner(tiny_clip, ["a", "b"], n_ctx=4)
    container = torch.nn.ModuleDict({"clip": tiny_clip, "prompt_learner": learner})
    freeze_all_but(container, [learner])
    assert trainable_parameters(container) == [("prompt_learner.ctx", (4, 64), 256)]
    assert "prompt_learner.ctx" in format_trainable_report(container) and "256" in format_trainable_report(container)
    for p in tiny_clip.parameters():
        p.requires_grad_(True)


def test_both_token_layouts_compute_the_same_prompted_features():
    """MODEL.BACKBONE.TOKEN_LAYOUT: OpenAI's (tokens, batch, width) and open_clip's (batch, tokens, width) blocks give
    the same features and prompt gradients (to float rounding), with deep prompts in both towers."""
    from trainers.backbone import set_token_layout

    state = make_tiny_clip("student", image_size=32, layers=4, text_layers=4, seed=3)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    results = {}
    for layout in ("batch_first", "tokens_first"):
        model = set_token_layout(build_clip_from_state_dict(state), layout)
        for tower in (model.visual.transformer, model.transformer):
            assert tower.batch_first == (layout == "batch_first")
            assert all(block.attn.batch_first == tower.batch_first for block in tower.resblocks)
        learner = TextPromptLearner(model, ["cat", "dog"], n_ctx=2, ctx_init="a photo of", init_family="ivlp")
        vision, text = DeepPrompts(2, 128, depth=3), DeepPrompts(2, 64, depth=3, first_layer=1)
        for prompts in (vision, text):
            for p in prompts.parameters():
                torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(1))
        vision_hooks, text_hooks = VisionPromptHooks(model.visual, depth=3), TextPromptHooks(model.transformer, 3)
        with vision_hooks.prompts(vision.as_dict()):
            image_features = model.visual(images)
        with text_hooks.prompts(text.as_dict()):
            text_features = TextEncoder(model)(learner(), learner.tokenized_prompts)
        (image_features.square().sum() + text_features.square().sum()).backward()
        results[layout] = (image_features.detach(), text_features.detach(), vision.prompts["layer1"].grad,
                           text.prompts["layer2"].grad)  # fmt: skip
    for ours, theirs in zip(results["tokens_first"], results["batch_first"], strict=True):
        assert ours.abs().sum() > 0
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_an_unknown_token_layout_is_refused_naming_the_choices(tiny_clip):
    from dassl.config import ConfigError
    from trainers.backbone import set_token_layout

    with pytest.raises(ConfigError, match=r"TOKEN_LAYOUT must be one of \['tokens_first', 'batch_first'\], got 'nlc'"):
        set_token_layout(tiny_clip, "nlc")
