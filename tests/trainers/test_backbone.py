"""trainers.backbone: name -> file -> verified checkpoint -> open_clip CLIP, for real and tiny checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.transformer import QuickGELU

from tools.make_tiny_clip import TINY_CLIP_SPECS, make_tiny_clip, save_tiny_clip
from trainers import backbone
from trainers.backbone import (
    OPENAI_CLIP_URLS,
    BackboneMismatchWarning,
    ClipCheckpointError,
    build_clip_from_state_dict,
    checkpoint_filename,
    clip_cache_dir,
    clip_model_info,
    describe_clip,
    expected_sha256,
    load_clip,
    load_clip_with_info,
    read_clip_state_dict,
    reference_architecture,
    resolve_clip_checkpoint,
    verify_checkpoint_file,
)

GOLDEN_LOGIT_SCALE_EXP = 100.02986145019531


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CLIP cache dir selected through $CLIP_CACHE_DIR."""
    cache = tmp_path / "clip-cache"
    cache.mkdir()
    monkeypatch.setenv("CLIP_CACHE_DIR", str(cache))
    return cache


def _pin_hash(monkeypatch: pytest.MonkeyPatch, name: str, content: bytes) -> str:
    """Make backbone `name` expect the SHA256 of `content` (we cannot produce OpenAI's real files)."""
    digest = hashlib.sha256(content).hexdigest()
    file_name = checkpoint_filename(name)
    monkeypatch.setitem(OPENAI_CLIP_URLS, name, f"https://mirror.invalid/clip/models/{digest}/{file_name}")
    return digest


def _inputs(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(123)
    images = torch.randn(2, 3, image_size, image_size, generator=generator)  # (batch, 3, H, W)
    texts = open_clip.tokenize(["a photo of a face.", "a photo of an accordion."])  # (2, 77)
    return images, texts


# ---------------------------------------------------------------------------------------------------------------
# names, hashes, cache dir
# ---------------------------------------------------------------------------------------------------------------


def test_known_names_map_to_openai_files_and_hashes() -> None:
    assert list(OPENAI_CLIP_URLS) == [
        "RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px",
    ]  # fmt: skip
    for name, url in OPENAI_CLIP_URLS.items():
        assert re.fullmatch(
            r"https://openaipublic\.azureedge\.net/clip/models/[0-9a-f]{64}/[\w-]+\.pt", url
        ), url
        assert (
            url
            == f"https://openaipublic.azureedge.net/clip/models/{expected_sha256(name)}/{checkpoint_filename(name)}"
        )
    assert checkpoint_filename("ViT-B/16") == "ViT-B-16.pt"
    assert checkpoint_filename("ViT-L/14@336px") == "ViT-L-14-336px.pt"
    assert checkpoint_filename("RN50x4") == "RN50x4.pt"
    assert expected_sha256("ViT-B/16") == "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"
    assert expected_sha256("ViT-L/14") == "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"
    # file stems are accepted as aliases
    assert checkpoint_filename("ViT-L-14") == "ViT-L-14.pt"
    assert expected_sha256("ViT-B-16") == expected_sha256("ViT-B/16")


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError) as info:
        resolve_clip_checkpoint("ViT-H/14")
    message = str(info.value)
    assert "'ViT-H/14'" in message
    for name in OPENAI_CLIP_URLS:
        assert name in message
    assert "MODEL.BACKBONE.PATH" in message


def test_cache_dir_from_env_or_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIP_CACHE_DIR", str(tmp_path / "weights"))
    assert clip_cache_dir() == tmp_path / "weights"
    monkeypatch.setenv("CLIP_CACHE_DIR", "")  # empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert clip_cache_dir() == tmp_path / "home" / ".cache" / "clip"
    monkeypatch.delenv("CLIP_CACHE_DIR")
    assert clip_cache_dir() == tmp_path / "home" / ".cache" / "clip"


# ---------------------------------------------------------------------------------------------------------------
# resolution and its errors
# ---------------------------------------------------------------------------------------------------------------


def test_explicit_path_wins_without_hash_check(cache_dir: Path, tmp_path: Path) -> None:
    (cache_dir / "ViT-B-16.pt").write_bytes(b"a different file in the cache")
    explicit = tmp_path / "my_finetuned_clip.pt"
    explicit.write_bytes(b"anything: explicit files are loaded as given")
    assert resolve_clip_checkpoint("ViT-B/16", str(explicit)) == explicit
    # the name does not even have to be known when the file is explicit
    assert resolve_clip_checkpoint("my-own-clip", str(explicit)) == explicit


def test_missing_explicit_path_names_file_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ViT-L-14.pt"
    with pytest.raises(ClipCheckpointError) as info:
        resolve_clip_checkpoint("ViT-L/14", str(missing), path_key="TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH")
    message = str(info.value)
    assert str(missing) in message
    assert "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH" in message
    assert "python tools/download_clip.py ViT-L/14" in message


def test_missing_cached_file_lists_searched_places_and_fix(cache_dir: Path) -> None:
    with pytest.raises(ClipCheckpointError) as info:
        resolve_clip_checkpoint("ViT-B/16")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "ViT-B-16.pt" in message
    assert "MODEL.BACKBONE.PATH (explicit path): not set" in message
    assert f"$CLIP_CACHE_DIR={cache_dir}: {cache_dir / 'ViT-B-16.pt'} (missing)" in message
    assert "~/.cache/clip" in message and "not searched" in message
    assert "python tools/download_clip.py ViT-B/16" in message
    assert "MODEL.BACKBONE.PATH /path/to/ViT-B-16.pt" in message


def test_missing_file_in_default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIP_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ClipCheckpointError) as info:
        resolve_clip_checkpoint("ViT-L/14", path_key="TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH")
    message = str(info.value)
    assert "$CLIP_CACHE_DIR: not set" in message
    assert f"{tmp_path / '.cache' / 'clip' / 'ViT-L-14.pt'} (missing)" in message
    assert "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH (explicit path): not set" in message
    assert "python tools/download_clip.py ViT-L/14" in message


def test_sha256_mismatch_is_an_error_with_both_hashes(cache_dir: Path) -> None:
    content = b"not really CLIP weights"
    bad = cache_dir / "ViT-B-16.pt"
    bad.write_bytes(content)
    with pytest.raises(ClipCheckpointError) as info:
        resolve_clip_checkpoint("ViT-B/16")
    message = str(info.value)
    assert str(bad) in message
    assert expected_sha256("ViT-B/16") in message
    assert hashlib.sha256(content).hexdigest() in message
    assert "python tools/download_clip.py ViT-B/16" in message
    assert not (cache_dir / "ViT-B-16.pt.sha256-ok").exists()


def test_verification_is_cached_in_a_sidecar(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"pretend these are the ViT-B/16 weights"
    digest = _pin_hash(monkeypatch, "ViT-B/16", content)
    file = cache_dir / "ViT-B-16.pt"
    file.write_bytes(content)

    calls: list[Path] = []
    real_hash = backbone.sha256_of_file

    def counting_hash(path: Path) -> str:
        calls.append(Path(path))
        return real_hash(path)

    monkeypatch.setattr(backbone, "sha256_of_file", counting_hash)
    assert resolve_clip_checkpoint("ViT-B/16") == file
    assert calls == [file]
    record = json.loads((cache_dir / "ViT-B-16.pt.sha256-ok").read_text())
    assert record == {"size": len(content), "mtime_ns": file.stat().st_mtime_ns, "sha256": digest}

    assert resolve_clip_checkpoint("ViT-B/16") == file  # second time: the sidecar answers
    assert verify_checkpoint_file(file, digest)
    assert calls == [file]

    # the file changes (same size, new mtime): hashed again, and now it fails
    file.write_bytes(content.upper())
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    with pytest.raises(ClipCheckpointError, match="failed its SHA256 check"):
        resolve_clip_checkpoint("ViT-B/16")
    assert calls == [file, file]


# ---------------------------------------------------------------------------------------------------------------
# reading both OpenAI formats, building the model
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Small teacher and student checkpoints (2 layers, 2x2 patch grid) in both formats, same weights."""
    root = tmp_path_factory.mktemp("tiny-clip")
    files: dict[str, dict[str, Path]] = {}
    for kind, spec in TINY_CLIP_SPECS.items():
        state_dict = make_tiny_clip(kind, image_size=2 * spec["patch"], layers=2, seed=7)
        files[kind] = {
            "state_dict": save_tiny_clip(state_dict, root / "sd" / spec["file"], "state_dict"),
            "torchscript": save_tiny_clip(state_dict, root / "jit" / spec["file"], "torchscript"),
        }
    return files


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_torchscript_and_state_dict_give_identical_models(tiny_checkpoints, kind: str) -> None:
    # OpenAI's released files are TorchScript archives; torch.save zips are told apart by their members
    assert backbone._is_torchscript_archive(tiny_checkpoints[kind]["torchscript"])
    assert not backbone._is_torchscript_archive(tiny_checkpoints[kind]["state_dict"])
    from_sd = read_clip_state_dict(tiny_checkpoints[kind]["state_dict"])
    from_jit = read_clip_state_dict(tiny_checkpoints[kind]["torchscript"])
    assert list(from_jit) == list(from_sd)
    assert all(
        torch.equal(from_jit[key], from_sd[key]) and from_jit[key].dtype == torch.float16 for key in from_sd
    )

    model_sd, model_jit = build_clip_from_state_dict(from_sd), build_clip_from_state_dict(from_jit)
    images, texts = _inputs(model_sd.visual.image_size[0])
    with torch.no_grad():
        image_sd, image_jit = model_sd.encode_image(images), model_jit.encode_image(images)
        text_sd, text_jit = model_sd.encode_text(texts), model_jit.encode_text(texts)
    embed_dim = TINY_CLIP_SPECS[kind]["embed_dim"]
    assert image_sd.shape == (2, embed_dim) and text_sd.shape == (2, embed_dim)
    assert image_sd.dtype == torch.float32 and torch.isfinite(image_sd).all()
    assert torch.equal(image_sd, image_jit)
    assert torch.equal(text_sd, text_jit)


def test_wrapped_state_dict_is_accepted(tiny_checkpoints, tmp_path: Path) -> None:
    plain = read_clip_state_dict(tiny_checkpoints["student"]["state_dict"])
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": plain, "epoch": 3}, wrapped)
    unwrapped = read_clip_state_dict(wrapped)
    assert list(unwrapped) == list(plain)
    assert all(torch.equal(unwrapped[key], plain[key]) for key in plain)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    truncated = tmp_path / "ViT-B-16.pt"
    truncated.write_bytes(b"PK\x03\x04 this is not a complete zip archive")
    with pytest.raises(ClipCheckpointError) as info:
        read_clip_state_dict(truncated)
    message = str(info.value)
    assert str(truncated) in message
    assert "python tools/download_clip.py ViT-B/16" in message
    assert "MODEL.BACKBONE.PATH" in message

    not_weights = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(ClipCheckpointError, match="expected a dict of tensors, found list"):
        read_clip_state_dict(not_weights)


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_built_model_has_the_checkpoint_shapes(kind: str) -> None:
    spec = TINY_CLIP_SPECS[kind]
    state_dict = make_tiny_clip(kind, image_size=3 * spec["patch"], layers=3, text_layers=1, seed=1)
    info = clip_model_info(state_dict)
    assert info == {
        "arch": "vit",
        "embed_dim": spec["embed_dim"],
        "image_resolution": 3 * spec["patch"],
        "vision_patch": spec["patch"],
        "grid": 3,
        "vision_width": spec["vision_width"],
        "vision_layers": 3,
        "vision_heads": spec["vision_width"] // 64,
        "text_width": spec["text_width"],
        "text_layers": 1,
        "text_heads": spec["text_width"] // 64,
        "context_length": 77,
        "vocab_size": 49408,
    }
    model = build_clip_from_state_dict(state_dict)
    assert isinstance(model, CLIP) and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.visual.image_size == (3 * spec["patch"],) * 2
    assert model.visual.conv1.kernel_size == (spec["patch"],) * 2
    assert model.text_projection.shape == (spec["text_width"], spec["embed_dim"])
    assert model.visual.proj.shape == (spec["vision_width"], spec["embed_dim"])
    assert len(model.visual.transformer.resblocks) == 3
    assert len(model.transformer.resblocks) == 1
    assert model.visual.transformer.resblocks[0].attn.num_heads == spec["vision_width"] // 64
    assert model.context_length == 77 and model.vocab_size == 49408
    # every weight is the checkpoint's, exactly
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value.float()) for key, value in state_dict.items())


def test_quick_gelu_in_both_towers(tiny_checkpoints) -> None:
    model = build_clip_from_state_dict(read_clip_state_dict(tiny_checkpoints["student"]["state_dict"]))
    assert isinstance(model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert isinstance(model.transformer.resblocks[-1].mlp.gelu, QuickGELU)


def test_fp32_checkpoint_is_not_rounded() -> None:
    state_dict = {
        key: value.float() + 1e-4 for key, value in make_tiny_clip("student", image_size=32, layers=1).items()
    }
    model = build_clip_from_state_dict(state_dict)
    assert torch.equal(model.visual.proj, state_dict["visual.proj"])  # fp16 would round the +1e-4 away


def test_modified_resnet_checkpoint_round_trips() -> None:
    torch.manual_seed(0)
    source = CLIP(
        embed_dim=64,
        vision_cfg=CLIPVisionCfg(layers=(1, 1, 1, 1), width=4, image_size=64),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1),
        quick_gelu=True,
    ).eval()
    state_dict = source.state_dict()
    info = clip_model_info(state_dict)
    assert info["arch"] == "resnet"
    assert info["vision_layers"] == (1, 1, 1, 1)
    assert (info["vision_width"], info["vision_heads"], info["image_resolution"], info["grid"]) == (
        4,
        2,
        64,
        2,
    )
    assert info["vision_patch"] is None and info["embed_dim"] == 64

    model = build_clip_from_state_dict(state_dict)
    images, texts = _inputs(64)
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), source.encode_image(images))
        assert torch.equal(model.encode_text(texts), source.encode_text(texts))


def test_openai_torchscript_extra_keys_are_ignored() -> None:
    state_dict = make_tiny_clip("student", image_size=32, layers=1)
    state_dict.update(
        input_resolution=torch.tensor(32), context_length=torch.tensor(77), vocab_size=torch.tensor(49408)
    )
    model = build_clip_from_state_dict(state_dict)
    assert model.visual.image_size == (32, 32)
    assert "input_resolution" in state_dict  # the caller's dict is left alone


def test_load_clip_from_cache_needs_the_named_architecture(
    cache_dir: Path, tiny_checkpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = tiny_checkpoints["student"]["torchscript"].read_bytes()
    _pin_hash(monkeypatch, "ViT-B/16", content)  # hash accepted: only the shapes are wrong
    (cache_dir / "ViT-B-16.pt").write_bytes(content)
    with pytest.raises(ClipCheckpointError) as info:
        load_clip("ViT-B/16", device="cpu")
    message = str(info.value)
    assert f"{cache_dir / 'ViT-B-16.pt'} is in the CLIP cache dir as ViT-B/16" in message
    assert "expected ViT width 768, 12 layers, patch 16, 224 px, embed 512" in message
    assert "found ViT width " in message and "python tools/download_clip.py ViT-B/16" in message


def test_explicit_file_of_another_size_warns_and_is_described(
    tiny_checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tiny_checkpoints["student"]["torchscript"]
    with pytest.warns(BackboneMismatchWarning, match=r"MODEL\.BACKBONE\.PATH .* is not a ViT-B/16 checkpoint"):
        model, info = load_clip_with_info("ViT-B/16", str(path), device="cpu")
    assert f"from {path}" in capsys.readouterr().out
    assert next(model.parameters()).device == torch.device("cpu")
    assert model.visual.image_size == (32, 32)
    assert info["matches"] is None and info["resolution"] == 32 and info["family"] == "vit"
    assert info["file"] == str(path) and info["name"] == "ViT-B/16" and info["source"] == "MODEL.BACKBONE.PATH"
    assert info == {**describe_clip(model), "name": "ViT-B/16", "file": str(path), "source": "MODEL.BACKBONE.PATH"}


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        ("ViT-B/16", {"width": 768, "patch": 16, "layers": 12, "resolution": 224, "embed_dim": 512}),
        ("ViT-L/14", {"width": 1024, "patch": 14, "layers": 24, "resolution": 224, "embed_dim": 768}),
        ("ViT-B/32", {"width": 768, "patch": 32, "layers": 12, "resolution": 224, "embed_dim": 512}),
        ("RN50", {"family": "resnet", "layers": [3, 4, 6, 3], "resolution": 224, "embed_dim": 1024}),
        ("RN101", {"family": "resnet", "layers": [3, 4, 23, 3], "resolution": 224, "embed_dim": 512}),
    ],
)
def test_reference_architectures_are_openais_and_recognised_from_shapes(name: str, facts: dict) -> None:
    reference = reference_architecture(name)
    assert {k: reference[k] for k in facts} == facts
    # a model of that architecture (meta tensors: shapes without memory) is recognised by its shapes alone
    config = open_clip.get_model_config(name.replace("/", "-"))
    with torch.device("meta"):
        model = CLIP(config["embed_dim"], config["vision_cfg"], config["text_cfg"], quick_gelu=True)
    described = describe_clip(model)
    assert described["matches"] == name
    assert {k: described[k] for k in facts} == facts


def test_a_prompt_checkpoint_given_as_clip_file_says_what_it_is(tmp_path: Path) -> None:
    ours = tmp_path / "model-best.pth.tar"
    torch.save({"state_dict": {"prompt_learner.ctx": torch.zeros(4, 8)}, "epoch": 2, "meta": {"trainer": "PromptSRC"}}, ours)
    with pytest.raises(ClipCheckpointError) as info:
        load_clip("ViT-B/16", str(ours))
    message = str(info.value)
    assert f"{ours} is a PromptSRC prompt-learning checkpoint, epoch 2, not CLIP weights" in message
    assert "TRAINER.PROMPTKD.TEACHER_CKPT" in message and "--model-dir" in message
    assert "ResNet" not in message and "visual.layer1" not in message

    upstream = tmp_path / "upstream.pth.tar"  # upstream Dassl: the scheduler object is pickled too
    param = torch.nn.Parameter(torch.zeros(2))
    scheduler = torch.optim.lr_scheduler.StepLR(torch.optim.SGD([param], lr=0.1), step_size=1)
    torch.save({"state_dict": {"prompt_learner.ctx": torch.zeros(4, 8)}, "epoch": 20, "scheduler": scheduler}, upstream)
    with pytest.raises(ClipCheckpointError, match=r"upstream\.pth\.tar is an upstream Dassl training checkpoint"):
        load_clip("ViT-L/14", str(upstream), path_key="TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH")


# ---------------------------------------------------------------------------------------------------------------
# the golden tiny checkpoints made for the parity fixtures
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "file_name"), [("ViT-L/14", "ViT-L-14.pt"), ("ViT-B/16", "ViT-B-16.pt")])
def test_golden_tiny_checkpoints_load(golden_dir: Path, name: str, file_name: str) -> None:
    path = golden_dir / "clip" / file_name
    manifest = json.loads((golden_dir / "clip" / "manifest.json").read_text())[file_name]
    info = clip_model_info(read_clip_state_dict(path))
    for key in (
        "embed_dim", "image_resolution", "vision_patch", "vision_width", "vision_layers", "text_width",
        "text_layers", "vision_heads", "text_heads", "grid", "context_length", "vocab_size",
    ):  # fmt: skip
        assert info[key] == manifest[key], key

    model = load_clip(name, str(path))
    assert sum(p.numel() for p in model.parameters()) == manifest["n_params"]
    assert abs(model.logit_scale.exp().item() - GOLDEN_LOGIT_SCALE_EXP) < 1e-6
    images, texts = _inputs(manifest["image_resolution"])
    with torch.no_grad():
        assert model.encode_image(images).shape == (2, manifest["embed_dim"])
        assert model.encode_text(texts).shape == (2, manifest["embed_dim"])


@pytest.mark.parametrize("trainer", ["CoOp", "ZeroshotCLIP"])
def test_results_json_records_the_backbone_actually_loaded(tmp_path: Path, trainer: str) -> None:
    import train
    from tests.conftest import REPO_ROOT, make_tiny_demo, run_tiny

    assets = make_tiny_demo(tmp_path, seed=0, layers=1, text_layers=1)
    with pytest.warns(BackboneMismatchWarning, match="is not a ViT-B/16 checkpoint"):
        if trainer == "CoOp":
            run_tiny(assets, trainer, "CoOp/vit_b16", tmp_path / "out")
        else:
            train.run(train.build_parser().parse_args([
                "--root", str(assets[0]), "--trainer", trainer, "--eval-only",
                "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
                "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"),
                "--output-dir", str(tmp_path / "out"), "MODEL.BACKBONE.PATH", str(assets[1]),
                "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", "False",
            ]))  # fmt: skip
    recorded = json.loads((tmp_path / "out" / "results.json").read_text())["backbones"]
    assert list(recorded) == ["MODEL.BACKBONE.PATH"]
    info = recorded["MODEL.BACKBONE.PATH"]
    assert info["name"] == "ViT-B/16" and info["file"] == str(assets[1]) and info["matches"] is None
    assert (info["family"], info["resolution"], info["layers"], info["patch"]) == ("vit", 32, 1, 16)


def test_runs_use_the_configured_token_layout_and_record_it(tmp_path):
    """MODEL.BACKBONE.TOKEN_LAYOUT reaches the trainer's CLIP (tokens-first by default, as OpenAI's code) and
    results.json; the two layouts train to the same numbers up to float rounding."""
    from tests.conftest import make_tiny_demo, run_tiny

    assets = make_tiny_demo(tmp_path / "assets", layers=4, text_layers=4, seed=4)
    records, trained = {}, {}
    for layout in ("default", "batch_first"):
        opts = () if layout == "default" else ("MODEL.BACKBONE.TOKEN_LAYOUT", layout)
        depth = ("TRAINER.IVLP.PROMPT_DEPTH_VISION", "3", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "3")
        trainer = run_tiny(assets, "IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx", tmp_path / layout, *depth, *opts)
        towers = (trainer.model.image_encoder.transformer, trainer.model.text_encoder.transformer)
        assert all(tower.batch_first == (layout == "batch_first") for tower in towers)
        records[layout] = json.loads((tmp_path / layout / "results.json").read_text())
        trained[layout] = {k: v for k, v in trainer.model.state_dict().items() if "prompts" in k or "ctx" in k}
    assert records["default"]["backbones"]["MODEL.BACKBONE.PATH"]["token_layout"] == "tokens_first"
    assert records["batch_first"]["backbones"]["MODEL.BACKBONE.PATH"]["token_layout"] == "batch_first"
    assert records["default"]["config_hash"] != records["batch_first"]["config_hash"]
    # the hash is of the result-determining config: the same run in another folder has the same one
    again = run_tiny(assets, "IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx", tmp_path / "elsewhere", *depth,
                     "TRAIN.PRINT_FREQ", "7")  # fmt: skip
    assert again is not None
    rerun = json.loads((tmp_path / "elsewhere" / "results.json").read_text())
    assert rerun["config_hash"] == records["default"]["config_hash"]
    assert records["default"]["base"]["accuracy"] == records["batch_first"]["base"]["accuracy"]
    assert len(trained["default"]) >= 3
    for key, value in trained["default"].items():
        torch.testing.assert_close(value, trained["batch_first"][key], rtol=1e-5, atol=1e-6)
