"""Faithful defaults: the model-selection split each original repository uses, and CLIP weights found in the
PromptKD repository's ``./clip/`` folder."""

from __future__ import annotations

import hashlib
import json

import pytest

import datasets  # noqa: F401  (registers the datasets)
import train
from dassl.evaluation.protocol import dataset_view as build_dataset
from datasets.demo import make_demo_dataset
from tests.conftest import REPO_ROOT
from trainers.backbone import OPENAI_CLIP_URLS, ClipCheckpointError, resolve_clip_checkpoint


def _cfg(data, trainer: str, *opts: str):
    argv = ["--root", str(data), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"), *opts]  # fmt: skip
    return train.setup_cfg(train.build_parser().parse_args(argv))


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_defaults")
    make_demo_dataset(root, size=32)
    return root


@pytest.mark.parametrize(
    "trainer", ["CoOp", "CoCoOp", "KgCoOp", "MaPLe", "IVLP", "VPT", "PromptSRC", "ZeroshotCLIP"]
)
def test_baselines_select_on_the_json_val_split(demo_root, trainer):
    cfg = _cfg(demo_root, trainer)
    assert cfg.DATASET.VAL_SOURCE == "val"  # recorded resolved, so config.yaml says which split was used
    split = json.loads((demo_root / "demo" / "split_demo.json").read_text())
    val = build_dataset(cfg).val
    assert sorted(d.impath.rsplit("/", 1)[-1] for d in val) == sorted(
        i[0].rsplit("/", 1)[-1] for i in split["val"]
    )


def test_promptkd_selects_on_the_test_split_as_its_repository(demo_root):
    assert _cfg(demo_root, "PromptKD").DATASET.VAL_SOURCE == "test"


def test_the_other_split_stays_a_switch(demo_root):
    cfg = _cfg(demo_root, "CoOp", "DATASET.VAL_SOURCE", "test")
    ds = build_dataset(cfg)
    assert [d.impath for d in ds.val] == [d.impath for d in ds.test]
    assert _cfg(demo_root, "PromptKD", "DATASET.VAL_SOURCE", "val").DATASET.VAL_SOURCE == "val"


def test_clip_weights_are_found_in_promptkds_clip_folder(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("CLIP_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ClipCheckpointError, match=r"PromptKD repository's place \./clip/: .*clip/ViT-B-16\.pt \(missing\)"
    ):
        resolve_clip_checkpoint("ViT-B/16")
    content = b"not really a checkpoint"
    digest = hashlib.sha256(content).hexdigest()
    monkeypatch.setitem(
        OPENAI_CLIP_URLS, "ViT-B/16", f"https://mirror.invalid/clip/models/{digest}/ViT-B-16.pt"
    )
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "ViT-B-16.pt").write_bytes(content)
    assert resolve_clip_checkpoint("ViT-B/16").resolve() == (tmp_path / "clip" / "ViT-B-16.pt").resolve()
    (cache / "ViT-B-16.pt").write_bytes(content)  # the cache dir comes first
    assert resolve_clip_checkpoint("ViT-B/16") == cache / "ViT-B-16.pt"


def test_promptsrc_few_shot_yaml_is_promptsrcs_and_promptkds_copy_is_renamed():
    from dassl.config import get_cfg_default, merge_cfg_from_file
    from trainers.config import extend_cfg

    def load(stem):
        cfg = get_cfg_default()
        extend_cfg(cfg)
        return merge_cfg_from_file(cfg, str(REPO_ROOT / "configs/trainers/PromptSRC" / f"{stem}.yaml"))

    ours = load("vit_b16_c2_ep50_batch4_4+4ctx_few_shot")  # baselines.md §4: PromptSRC's recipe
    assert (ours.OPTIM.LR, ours.DATALOADER.TRAIN_X.BATCH_SIZE, ours.OPTIM.MAX_EPOCH) == (0.0025, 4, 50)
    copy = load("vit_b16_c2_ep50_batch8_4+4ctx_few_shot_promptkd")  # the PromptKD repository's file of that name
    assert (copy.OPTIM.LR, copy.DATALOADER.TRAIN_X.BATCH_SIZE, copy.TEST.FINAL_MODEL) == (0.005, 8, "best_val")
    assert copy.DATASET.VAL_SOURCE == "test"
