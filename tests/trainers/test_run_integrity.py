"""Runs are records: a finished run is left as it is, a restart under another config is refused, --force keeps
the old run aside, non-finite values never reach a checkpoint, caches are keyed by content and never change a
number (issue: runs you can trust). The kill-and-restart checks are in tests/test_fault_injection.py."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train
from dassl.data.datasets import DatasetBase, Datum
from dassl.utils.errors import NonFiniteError, RunStateError
from datasets.common import fewshot_split
from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo
from tests.trainers.script_runner import make_recorder, script
from trainers.teacher import class_vector_cache_key


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("integrity"), layers=2, seed=3)


def coop_argv(assets, out: Path, *opts: str, flags: tuple[str, ...] = ()) -> list[str]:
    data, ckpt = assets
    return [
        "--root", str(data), "--seed", "1", "--trainer", "CoOp",
        "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
        "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"),
        "--output-dir", str(out), *flags,
        "MODEL.BACKBONE.PATH", str(ckpt), "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "2",
        "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", "DATASET.SUBSAMPLE_CLASSES", "base",
        "OPTIM.LR", "0.05", "TRAINER.COOP.PREC", "fp32", "USE_CUDA", USE_CUDA_OPT, *opts,
    ]  # fmt: skip


def run(assets, out: Path, *opts: str, flags: tuple[str, ...] = ()):
    return train.run(train.build_parser().parse_args(coop_argv(assets, out, *opts, flags=flags)))


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    run(assets, out)
    return out


def test_a_finished_run_started_again_changes_nothing(assets, finished, capsys):
    before = snapshot(finished)
    assert run(assets, finished) is None
    assert "holds this config's finished run: nothing to do" in capsys.readouterr().out
    assert snapshot(finished) == before  # no new log, no rewritten results.json or checkpoint


@pytest.mark.parametrize(
    ("opts", "difference"),
    [
        (("OPTIM.LR", "0.5"), "OPTIM.LR: 0.05 -> 0.5"),
        (("SEED", "2"), "SEED: 1 -> 2"),
        (("DATASET.SUBSAMPLE_CLASSES", "new"), "DATASET.SUBSAMPLE_CLASSES: 'base' -> 'new'"),
    ],
)
def test_a_restart_with_another_config_is_refused_naming_the_keys(assets, finished, opts, difference):
    before = snapshot(finished)
    with pytest.raises(RunStateError) as err:
        run(assets, finished, *opts)
    message = str(err.value)
    assert difference in message and "another --output-dir" in message and "FORCE=1" in message
    assert snapshot(finished) == before


def test_resume_from_a_checkpoint_of_another_config_is_refused(assets, finished, tmp_path):
    with pytest.raises(RunStateError, match=r"trained with another config.*\n  OPTIM.LR: 0.05 -> 0.01"):
        run(assets, tmp_path / "other", "OPTIM.LR", "0.01", flags=("--resume", str(finished)))


def test_eval_only_into_a_training_folder_is_refused(assets, finished):
    with pytest.raises(RunStateError, match=r"--eval-only: \(absent\) -> True"):
        run(assets, finished, flags=("--eval-only", "--model-dir", str(finished), "--load-epoch", "2"))


def test_force_trains_afresh_and_keeps_the_old_run(assets, tmp_path):
    out = tmp_path / "run"
    run(assets, out)
    old_results = (out / "results.json").read_text()
    trainer = run(assets, out, "OPTIM.LR", "0.01", flags=("--force",))
    assert trainer is not None and trainer.start_epoch == 0
    (kept,) = tmp_path.glob("run.old-*")
    assert (kept / "results.json").read_text() == old_results
    assert json.loads((out / "run.json").read_text())["fingerprint"]["OPTIM.LR"] == 0.01
    assert "final" in json.loads((out / "results.json").read_text())


def test_force_in_the_scripts_passes_force_to_train_py(assets, tmp_path):
    data, _ = assets
    recorder = {"data": data, "recorder": make_recorder(tmp_path)}
    out, argv = script(recorder, tmp_path / "output", "scripts/coop/base2new_train.sh", "demo", "1", FORCE="1")
    assert argv[0] == "--force"  # right after train.py: a flag, before the KEY VALUE overrides
    assert "train.py --force --root" in out


def test_non_finite_parameters_stop_the_run_before_any_save(assets, tmp_path):
    """One batch per epoch: the huge step of epoch 2 turns the prompt into inf without a non-finite loss."""
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError) as err:
        run(assets, out, "OPTIM.LR", "1e38", "DATALOADER.TRAIN_X.BATCH_SIZE", "32")
    message = str(err.value)
    assert "after epoch 2" in message and "not saved" in message and "OPTIM.LR (now 1e+38)" in message
    last = torch.load(out / "prompt_learner" / "model-last.pth.tar", weights_only=True)
    assert last["epoch"] == 1 and torch.isfinite(last["state_dict"]["ctx"]).all()  # the last good state is kept
    assert not (out / "prompt_learner" / "model.pth.tar-2").exists()


def test_a_non_finite_loss_is_a_message_with_epoch_batch_and_hint_and_exit_code_3(assets, tmp_path):
    argv = coop_argv(assets, tmp_path / "run", "OPTIM.LR", "1e38", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
                     "TRAINER.COOP.PREC", "fp16")  # fmt: skip
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "at epoch 2/2, batch " in proc.stderr and "PREC fp16" in proc.stderr and "amp" in proc.stderr


# ---------------------------------------------------------------------------------------------- caches


class _Listing(DatasetBase):
    def __init__(self) -> None:  # generate_fewshot_dataset needs no data of its own
        pass


def _items(root: Path, n_per_class: int, tag: str) -> list[Datum]:
    items = []
    for c in range(3):
        for i in range(n_per_class):
            path = root / f"{tag}{c}_{i}.jpg"
            path.write_bytes(b"")
            items.append(Datum(impath=str(path), label=c, classname=f"c{c}"))
    return items


def test_fewshot_cache_is_keyed_by_the_split_content_and_leaves_the_rng_alone(tmp_path, capsys):
    random.seed(5)
    state = random.getstate()
    img = tmp_path / "img"
    img.mkdir()
    train_a, val_a = _items(img, 6, "a"), _items(img, 3, "va")
    first, _ = fewshot_split(_Listing(), train_a, val_a, 2, 1, str(tmp_path / "cache"), str(img))
    assert random.getstate() == state  # cold: sampled, then the stream is put back
    again, _ = fewshot_split(_Listing(), train_a, val_a, 2, 1, str(tmp_path / "cache"), str(img))
    assert random.getstate() == state and [d.impath for d in again] == [d.impath for d in first]  # warm
    assert "Loading preprocessed few-shot data" in capsys.readouterr().out

    train_b = _items(img, 6, "b")  # the split file was edited: other images
    changed, _ = fewshot_split(_Listing(), train_b, val_a, 2, 1, str(tmp_path / "cache"), str(img))
    assert "sampling anew" in capsys.readouterr().out
    assert {d.impath for d in changed} <= {d.impath for d in train_b}


def test_class_vector_key_changes_with_every_input(tmp_path):
    files = {}
    for name in ("teacher", "teacher2", "clip", "clip2"):
        files[name] = tmp_path / name
        files[name].write_bytes(name.encode())
    base = {"checkpoint": files["teacher"], "classnames": ["a", "b"], "backbone": "ViT-L/14", "ctx_init": "a photo of a",
            "backbone_file": files["clip"], "precision": "fp16", "device": "cpu", "token_layout": "tokens_first"}  # fmt: skip

    def key(**changes):
        args = {**base, **changes}
        return class_vector_cache_key(str(args.pop("checkpoint")), args.pop("classnames"), args.pop("backbone"),
                                      args.pop("ctx_init"), **args)  # fmt: skip

    variants = [key(), key(checkpoint=files["teacher2"]), key(backbone_file=files["clip2"]), key(classnames=["a", "c"]),
                key(backbone="ViT-B/16"), key(ctx_init="a picture of a"), key(precision="fp32"), key(device="cuda"),
                key(token_layout="batch_first")]  # fmt: skip
    assert len(set(variants)) == len(variants)
    files["clip"].write_bytes(b"other weights under the same name")
    assert key() != variants[0]
