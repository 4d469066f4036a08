"""Checkpoint files: atomic writes, weights-only loading, and the restricted reader for legacy pickles."""

from __future__ import annotations

import os
import pathlib
import pickle
import random

import numpy as np
import pytest
import torch

from dassl.utils import (
    Registry,
    UntrustedObject,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)


def _state(epoch: int = 3) -> dict:
    return {
        "state_dict": {"module.ctx": torch.arange(6.0).reshape(2, 3), "bias": torch.ones(2)},
        "epoch": epoch,
        "optimizer": None,
        "scheduler": None,
        "val_result": 81.5,
    }


def test_save_checkpoint_writes_named_file_pointer_and_best_copy(tmp_path):
    path = save_checkpoint(_state(), str(tmp_path / "prompt_learner"), is_best=True)
    assert os.path.basename(path) == "model.pth.tar-3"
    assert (tmp_path / "prompt_learner" / "checkpoint").read_text() == "model.pth.tar-3\n"
    assert (tmp_path / "prompt_learner" / "model-best.pth.tar").is_file()
    assert sorted(p.name for p in (tmp_path / "prompt_learner").iterdir()) == [
        "checkpoint",
        "model-best.pth.tar",
        "model.pth.tar-3",
    ]  # no temp files left behind
    loaded = torch.load(path, weights_only=True)
    assert list(loaded["state_dict"]) == ["ctx", "bias"]  # "module." stripped
    assert loaded["val_result"] == 81.5


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    save_checkpoint(_state(), str(tmp_path), model_name="model-last.pth.tar")
    before = (tmp_path / "model-last.pth.tar").read_bytes()

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_state(epoch=4), str(tmp_path), model_name="model-last.pth.tar")
    assert (tmp_path / "model-last.pth.tar").read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


class _Marker:
    """Unpickling this would create a file: a stand-in for arbitrary code in an untrusted pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_legacy_pickle_is_read_without_importing_or_running_anything(tmp_path, capsys):
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)
    marker = tmp_path / "pwned"
    legacy = {
        "state_dict": {"ctx": torch.full((2, 3), 7.0)},
        "epoch": 20,
        "optimizer": optimizer.state_dict(),
        "scheduler": {"successor": scheduler, "last_epoch": 3},
        "payload": _Marker(str(marker)),
    }
    path = tmp_path / "model.pth.tar-20"
    torch.save(legacy, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what an unguarded loader would have to fall back from

    checkpoint = load_checkpoint(str(path))
    assert not marker.exists(), "the restricted reader executed code from the pickle"
    torch.testing.assert_close(checkpoint["state_dict"]["ctx"], torch.full((2, 3), 7.0))
    assert checkpoint["epoch"] == 20
    assert checkpoint["scheduler"]["last_epoch"] == 3
    assert isinstance(checkpoint["scheduler"]["successor"], UntrustedObject)
    assert isinstance(checkpoint["payload"], UntrustedObject)
    note = capsys.readouterr().out
    assert "legacy checkpoint" in note and "torch.optim.lr_scheduler.CosineAnnealingLR" in note


def test_upstream_teacher_checkpoint_loads(golden_dir):
    path = golden_dir / "promptkd" / "teacher_model" / "Caltech101" / "VLPromptLearner" / "model-best.pth.tar"
    checkpoint = load_checkpoint(str(path))
    assert checkpoint["epoch"] == 20
    state_dict = checkpoint["state_dict"]
    assert len(state_dict) == 401
    assert state_dict["prompt_learner.ctx"].shape == (4, 64)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here.pth.tar"):
        load_checkpoint(str(tmp_path / "nothing-here.pth.tar"))


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    torch.save(get_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), torch.rand(2))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (random.random(), float(np.random.rand()), torch.rand(2))
    assert got[:2] == expected[:2]
    torch.testing.assert_close(got[2], expected[2], rtol=0, atol=0)


def test_registry_rejects_duplicates_and_lists_names_for_unknown():
    registry = Registry("THING")

    @registry.register()
    class Alpha:
        pass

    assert registry.get("Alpha") is Alpha
    assert registry.registered_names() == ["Alpha"]
    with pytest.raises(KeyError, match="already registered"):
        registry.register(Alpha)
    with pytest.raises(KeyError, match="Alpha"):
        registry.get("Beta")
