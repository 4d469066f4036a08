"""Contrastive pretraining of the miniature CLIPs (trainers.pretrain_clip) and its content-keyed cache
(tools/pretrain_clip.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from datasets import miniworld
from tools import make_tiny_clip as tiny
from tools import pretrain_clip as tool
from trainers import pretrain_clip
from trainers.backbone import build_clip_from_state_dict, clip_model_info, read_clip_state_dict
from trainers.prompting import tokenize

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_recipe(kind: str = "student", **settings) -> tool.ClipRecipe:
    base = tool.MINIWORLD_CLIPS[kind]
    steps = replace(base.settings, steps=settings.pop("steps", 3), batch_size=8, warmup_steps=1, **settings)
    return replace(base, images_per_class=1, image_size=32, settings=steps)


def test_make_tiny_clip_takes_widths_and_patch_and_rejects_bad_widths():
    sd = tiny.make_tiny_clip("teacher", image_size=32, layers=1, vision_width=128, text_width=64, patch=8)
    info = clip_model_info(sd)
    assert (info["vision_width"], info["vision_heads"], info["vision_patch"], info["grid"]) == (128, 2, 8, 4)
    with pytest.raises(ValueError, match="multiples of 64"):
        tiny.make_tiny_clip("student", image_size=32, vision_width=96)


def test_truncated_caption_encoding_equals_the_77_token_forward():
    model = build_clip_from_state_dict(tiny.make_tiny_clip("student", image_size=32, layers=2, seed=3))
    tokens = tokenize(["a photo of a red striped star.", "a blue circle"])
    with torch.no_grad():
        assert torch.allclose(pretrain_clip.encode_captions(model, tokens), model.encode_text(tokens), atol=1e-5)


def test_pretraining_lowers_the_loss_is_deterministic_and_keeps_openai_keys():
    names = list(miniworld.ALL_CLASSNAMES[:8])
    images, labels = miniworld.render_images(names, 2, "pretrain", seed=0, size=32)
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    init = tiny.make_tiny_clip("student", image_size=32, layers=1, seed=0)
    settings = pretrain_clip.PretrainSettings(steps=12, batch_size=8, lr=3e-3, warmup_steps=2)
    logs: list[str] = []
    first = pretrain_clip.contrastive_pretrain(init, images, labels, names, ["a {}."], settings, log=logs.append)
    second = pretrain_clip.contrastive_pretrain(init, images, labels, names, ["a {}."], settings, log=lambda _: None)
    assert list(first) == list(init) and all(t.dtype == torch.float16 for t in first.values())
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["visual.conv1.weight"], init["visual.conv1.weight"])
    losses = [float(line.split("loss ")[1]) for line in logs]
    assert losses[-1] < losses[0], logs


def test_tool_caches_by_content_and_records_zero_shot_accuracy(tmp_path):
    logs: list[str] = []
    recipes = {"student": tiny_recipe()}
    paths = tool.pretrain_miniworld_clips(tmp_path, recipes, log=logs.append)
    path = paths["student"]
    assert path.name == "ViT-B-16.pt" and path.parent.parent == tmp_path
    assert clip_model_info(read_clip_state_dict(path))["image_resolution"] == 32
    record = (path.parent / tool.RECORD).read_text()
    assert "zero_shot_pretrain" in record and "zero_shot_downstream" in record
    assert any("zero-shot over" in line for line in logs)
    mtime = path.stat().st_mtime_ns

    logs.clear()
    assert tool.pretrain_miniworld_clips(tmp_path, recipes, log=logs.append) == paths
    assert path.stat().st_mtime_ns == mtime and "(cached)" in logs[0]
    other = tool.pretrained_clip_path(tiny_recipe(steps=4), tmp_path)
    assert other != path  # another recipe, another cache entry
