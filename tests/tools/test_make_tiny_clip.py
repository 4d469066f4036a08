"""tools/make_tiny_clip.py: OpenAI-format random CLIP checkpoints, both kinds, both formats, seeded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tools.make_tiny_clip import TINY_CLIP_SPECS, main, make_tiny_clip, save_tiny_clip, tiny_clip_filename
from trainers.backbone import read_clip_state_dict


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_shapes_follow_the_documented_spec(kind: str) -> None:
    spec = TINY_CLIP_SPECS[kind]
    patch, v_width, t_width, embed = (
        spec["patch"],
        spec["vision_width"],
        spec["text_width"],
        spec["embed_dim"],
    )
    sd = make_tiny_clip(kind, image_size=4 * patch)
    assert all(t.dtype == torch.float16 for t in sd.values())
    assert sd["visual.conv1.weight"].shape == (v_width, 3, patch, patch)
    assert sd["visual.positional_embedding"].shape == (4 * 4 + 1, v_width)
    assert sd["visual.class_embedding"].shape == (v_width,)
    assert sd["visual.proj"].shape == (v_width, embed)
    assert sd["text_projection"].shape == (t_width, embed)
    assert sd["positional_embedding"].shape == (77, t_width)
    assert sd["token_embedding.weight"].shape == (49408, t_width)
    assert sd["visual.transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * v_width, v_width)
    assert sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape == (4 * v_width, v_width)
    assert sd["transformer.resblocks.0.mlp.c_proj.weight"].shape == (t_width, 4 * t_width)
    n_vision = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
    n_text = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    assert (n_vision, n_text) == (spec["vision_layers"], spec["text_layers"])
    assert sd["logit_scale"].item() == torch.tensor(math.log(100.0)).half().item() == 4.60546875
    assert torch.equal(sd["visual.ln_pre.weight"], torch.ones(v_width, dtype=torch.float16))
    assert torch.equal(
        sd["transformer.resblocks.0.attn.in_proj_bias"], torch.zeros(3 * t_width, dtype=torch.float16)
    )
    # CLIP.initialize_parameters' std rules (statistically, on the big tensors)
    assert sd["token_embedding.weight"].float().std().item() == pytest.approx(0.02, rel=0.02)
    assert sd["positional_embedding"].float().std().item() == pytest.approx(0.01, rel=0.1)


def test_layer_overrides_and_image_size_check() -> None:
    sd = make_tiny_clip("student", image_size=32, layers=3, text_layers=1)
    assert sum(k.endswith(".attn.in_proj_weight") and k.startswith("visual.") for k in sd) == 3
    assert sum(k.endswith(".attn.in_proj_weight") and k.startswith("transformer.") for k in sd) == 1
    sd = make_tiny_clip("teacher", image_size=28, layers=2)
    assert sum(k.endswith(".attn.in_proj_weight") for k in sd) == 4  # both towers
    with pytest.raises(ValueError, match="multiple of the teacher patch size 14"):
        make_tiny_clip("teacher", image_size=224 + 1)
    with pytest.raises(ValueError, match="unknown tiny CLIP kind"):
        make_tiny_clip("huge")


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    first = make_tiny_clip("teacher", image_size=28, layers=1, seed=3)
    again = make_tiny_clip("teacher", image_size=28, layers=1, seed=3)
    other = make_tiny_clip("teacher", image_size=28, layers=1, seed=4)
    assert list(first) == list(again)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["visual.proj"], other["visual.proj"])


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("kind", ["teacher", "student"])
@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_saved_formats_hold_exactly_the_openai_keys(tmp_path: Path, kind: str, fmt: str) -> None:
    sd = make_tiny_clip(kind, image_size=2 * TINY_CLIP_SPECS[kind]["patch"], layers=2, seed=5)
    path = save_tiny_clip(sd, tmp_path / tiny_clip_filename(kind), fmt)
    if fmt == "torchscript":
        raw = torch.jit.load(str(path), map_location="cpu").state_dict()  # a real TorchScript archive
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == list(sd)
    assert all(torch.equal(raw[k], sd[k]) and raw[k].dtype == torch.float16 for k in sd)
    loaded = read_clip_state_dict(path)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_matches_the_golden_tiny_checkpoints_layout(golden_dir: Path) -> None:
    manifest = json.loads((golden_dir / "clip" / "manifest.json").read_text())
    for kind in ("teacher", "student"):
        file_name = tiny_clip_filename(kind)
        golden = torch.load(golden_dir / "clip" / file_name, map_location="cpu", weights_only=True)
        ours = make_tiny_clip(kind, image_size=manifest[file_name]["image_resolution"])
        assert set(ours) == set(golden)
        assert all(ours[k].shape == golden[k].shape and ours[k].dtype == golden[k].dtype for k in golden)
        assert sum(t.numel() for t in ours.values()) == manifest[file_name]["n_params"]


def test_cli_writes_both_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--kind", "teacher", "student", "--out", str(tmp_path), "--format", "both"]
    assert main(argv + ["--image-size", "112", "--layers", "1", "--seed", "9"]) == 0
    out = capsys.readouterr().out
    for kind in ("teacher", "student"):
        file_name = tiny_clip_filename(kind)
        plain, jit = tmp_path / file_name, tmp_path / "torchscript" / file_name
        assert f": {plain}" in out and f": {jit}" in out
        from_plain, from_jit = read_clip_state_dict(plain), read_clip_state_dict(jit)
        expected = make_tiny_clip(kind, image_size=112, layers=1, seed=9)
        assert all(
            torch.equal(from_plain[k], expected[k]) and torch.equal(from_jit[k], expected[k])
            for k in expected
        )
    assert tiny_clip_filename("teacher") == "ViT-L-14.pt" and tiny_clip_filename("student") == "ViT-B-16.pt"
