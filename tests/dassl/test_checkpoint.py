"""Checkpoint files: atomic writes, weights-only loading, and the restricted reader for legacy pickles."""

from __future__ import annotations

import errno
import os
import pathlib
import pickle
import random
import stat
import zipfile

import numpy as np
import pytest
import torch

from dassl.utils import (
    Registry,
    UntrustedObject,
    atomic_write_text,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from dassl.utils.errors import UserError
from dassl.utils.tools import FileWriteError
from dassl.utils.torchtools import CheckpointReadError, UnsafeCheckpointError


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


def _legacy_dassl_checkpoint(**extra) -> dict:
    """What upstream Dassl saves: trainable tensors, the optimizer's state dict and the scheduler *object*."""
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    param.grad = torch.ones(2)
    optimizer.step()  # momentum buffers: the optimizer inside the scheduler pickles its state as a defaultdict
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)
    return {
        "state_dict": {"ctx": torch.full((2, 3), 7.0)},
        "epoch": 20,
        "optimizer": optimizer.state_dict(),
        "scheduler": {"successor": scheduler, "last_epoch": 3},
        **extra,
    }


def test_legacy_pickle_is_read_without_importing_or_running_anything(tmp_path, capsys):
    path = tmp_path / "model.pth.tar-20"
    torch.save(_legacy_dassl_checkpoint(), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what an unguarded loader would have to fall back from

    checkpoint = load_checkpoint(str(path))
    torch.testing.assert_close(checkpoint["state_dict"]["ctx"], torch.full((2, 3), 7.0))
    assert checkpoint["epoch"] == 20
    assert checkpoint["scheduler"]["last_epoch"] == 3
    successor = checkpoint["scheduler"]["successor"]
    assert isinstance(successor, UntrustedObject)
    assert successor.state["T_max"] == 5  # the plain data is kept
    assert isinstance(successor.state["optimizer"], UntrustedObject)
    assert type(successor.state["optimizer"].state["state"]) is dict  # defaultdict -> plain dict
    note = capsys.readouterr().out
    assert "legacy checkpoint" in note and "torch.optim.lr_scheduler.CosineAnnealingLR" in note


def test_legacy_pickle_with_a_code_payload_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth.tar-20"
    torch.save(_legacy_dassl_checkpoint(payload=_Marker(str(marker))), path)
    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load .*model\.pth\.tar-20.*getattr") as info:
        load_checkpoint(str(path))
    assert isinstance(info.value, UserError)
    assert not marker.exists(), "the restricted reader executed code from the pickle"


def _torch_file_with_pickle(path: pathlib.Path, data_pkl: bytes) -> pathlib.Path:
    """A torch zip checkpoint whose ``data.pkl`` is ``data_pkl`` (handcrafted opcodes)."""
    torch.save({"x": 1}, path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, data_pkl if name.endswith("data.pkl") else content)
    return path


def _pickle(*ops: bytes) -> bytes:
    return b"\x80\x02" + b"".join(ops) + b"."


# BUILD with a (None, slotstate) state on a class object: plain pickle would setattr on the class itself.
_BUILD_ON_CLASS = _pickle(
    b"ccollections\nCounter\n",  # GLOBAL (a standard-library class torch allows)
    b"N}X\x0b\x00\x00\x00most_commonK\x01s\x86",  # (None, {"most_common": 1})
    b"b",  # BUILD
)
_BUILD_ON_PLACEHOLDER_CLASS = _pickle(
    b"ctorch.optim.sgd\nSGD\n", b"N}X\x04\x00\x00\x00stepK\x01s\x86", b"b"
)
_GLOBAL_BUILTIN_FUNCTION = _pickle(b"cbuiltins\nprint\n", b"X\x02\x00\x00\x00hi\x85", b"R")
_GLOBAL_OS_SYSTEM = _pickle(b"cos\nsystem\n", b"X\x04\x00\x00\x00true\x85", b"R")
_REDUCE_ON_NON_WHITELISTED = _pickle(b"cpathlib\nPath\n", b"X\x01\x00\x00\x00x\x85", b"R")
_REDUCE_ON_A_PLACEHOLDER_INSTANCE = _pickle(
    b"ctorch.optim.sgd\nSGD\n)\x81", b")R"  # NEWOBJ SGD(), then call the instance
)


@pytest.mark.parametrize(
    "data_pkl",
    [
        _BUILD_ON_CLASS,
        _BUILD_ON_PLACEHOLDER_CLASS,
        _GLOBAL_BUILTIN_FUNCTION,
        _GLOBAL_OS_SYSTEM,
        _REDUCE_ON_NON_WHITELISTED,
        _REDUCE_ON_A_PLACEHOLDER_INSTANCE,
    ],
    ids=["build-on-stdlib-class", "build-on-placeholder-class", "builtins-print", "os-system", "reduce-pathlib",
         "reduce-on-placeholder"],
)
def test_handcrafted_pickles_are_refused_without_changing_state(tmp_path, data_pkl, capsys):
    import collections

    most_common = collections.Counter.most_common
    path = _torch_file_with_pickle(tmp_path / "evil.pth", data_pkl)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_checkpoint(str(path))
    assert collections.Counter.most_common is most_common
    assert "hi" not in capsys.readouterr().out


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_checkpoint_names_the_file_and_the_fix(tmp_path, keep):
    path = tmp_path / "model.pth.tar-3"
    torch.save(_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointReadError) as info:
        load_checkpoint(str(path))
    message = str(info.value)
    assert str(path) in message and "truncated or corrupt" in message and "rerun the same command" in message
    assert isinstance(info.value, UserError)


def test_full_disk_while_saving_is_a_message_and_keeps_the_old_file(tmp_path, monkeypatch):
    save_checkpoint(_state(), str(tmp_path), model_name="model-last.pth.tar")
    before = (tmp_path / "model-last.pth.tar").read_bytes()

    def full_disk(obj, f, *args, **kwargs):  # what torch's C++ writer raises on ENOSPC
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(FileWriteError) as info:
        save_checkpoint(_state(epoch=4), str(tmp_path), model_name="model-last.pth.tar")
    message = str(info.value)
    assert "model-last.pth.tar" in message and "free" in message and "--output-dir" in message
    assert (tmp_path / "model-last.pth.tar").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_full_disk_while_writing_text_is_a_message(tmp_path, monkeypatch):
    (tmp_path / "results.json").write_text("old\n")
    real_fsync = os.fsync

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(FileWriteError, match=r"results\.json.*No space left on device"):
        atomic_write_text(str(tmp_path / "results.json"), "new\n")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert (tmp_path / "results.json").read_text() == "old\n"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_written_through_temp_files_get_the_usual_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(str(tmp_path / "config.yaml"), "a: 1\n")
        save_checkpoint(_state(), str(tmp_path / "ckpt"), is_best=True)
        reference = tmp_path / "plain.txt"
        reference.write_text("x")  # what open() gives
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE(reference.stat().st_mode) == expected
    for path in [tmp_path / "config.yaml", *(tmp_path / "ckpt").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_upstream_teacher_checkpoint_loads(golden_dir):
    path = golden_dir / "promptkd" / "teacher_model" / "Caltech101" / "VLPromptLearner" / "model-best.pth.tar"
    checkpoint = load_checkpoint(str(path))
    assert checkpoint["epoch"] == 20
    state_dict = checkpoint["state_dict"]
    assert len(state_dict) == 401
    assert state_dict["prompt_learner.ctx"].shape == (4, 64)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here.pth.tar") as info:
        load_checkpoint(str(tmp_path / "nothing-here.pth.tar"))
    assert isinstance(info.value, UserError)


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
