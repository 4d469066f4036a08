"""Every user error is a message, not a traceback: one test per row of docs/errors.md.

Each case provokes the error through the entry point a user runs (``train.py``'s ``main``, the tools' ``main``),
then checks the exit code, that stderr (or stdout, for the per-dataset report of prepare_data) holds the
message with the file or key and the fix, and that no traceback was printed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo

OFFLINE_URL = "http://127.0.0.1:9/nothing-listens-here"  # port 9 (discard): connection refused, no network needed


@pytest.fixture(scope="module")
def assets(tmp_path_factory, one_thread) -> tuple[Path, Path]:
    return make_tiny_demo(tmp_path_factory.mktemp("errors"), seed=0, layers=1, text_layers=1)


@dataclass
class Ctx:
    assets: tuple[Path, Path]
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def data(self, edit: Callable[[dict], None] | None = None, raw: str | None = None) -> Path:
        """A copy of the demo data whose split file is edited (``edit``) or replaced (``raw``)."""
        root = self.tmp / "data"
        shutil.copytree(self.assets[0], root)
        split_path = root / "demo" / "split_demo.json"
        if edit is not None:
            split = json.loads(split_path.read_text())
            edit(split)
            split_path.write_text(json.dumps(split))
        if raw is not None:
            split_path.write_text(raw)
        return root

    def train(self, *opts: str, data: Path | None = None, trainer: str = "CoOp", flags: tuple[str, ...] = ()) -> int:
        import train

        return train.main(self.train_argv(*opts, data=data, trainer=trainer, flags=flags))

    def train_argv(self, *opts: str, data: Path | None = None, trainer: str = "CoOp", flags: tuple[str, ...] = ()):
        """``train.py``'s arguments for a 1-epoch run on the tiny assets (``opts`` last, so they override)."""
        config = {"CoOp": "CoOp/vit_b16", "PromptKD": "PromptKD/vit_b16_c2_ep20_batch8_4+4ctx"}.get(trainer, "CoOp/vit_b16")
        argv = [
            "--root", str(data or self.assets[0]), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
            "--config-file", str(REPO_ROOT / "configs/trainers" / f"{config}.yaml"),
            "--output-dir", str(self.tmp / "out"), *flags,
            "MODEL.BACKBONE.PATH", str(self.assets[1]), "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1",
            "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "1", "DATASET.SUBSAMPLE_CLASSES", "base",
            "USE_CUDA", USE_CUDA_OPT, *opts,
        ]  # fmt: skip
        return argv

    def model_dir(self, content: bytes | None = None, obj: object = None) -> Path:
        """A --model-dir whose prompt_learner/model-best.pth.tar holds ``content`` or ``torch.save(obj)``."""
        folder = self.tmp / "model_dir" / "prompt_learner"
        folder.mkdir(parents=True)
        path = folder / "model-best.pth.tar"
        if content is not None:
            path.write_bytes(content)
        else:
            torch.save(obj, path)
        return self.tmp / "model_dir"


def _truncated_checkpoint(ctx: Ctx) -> int:
    path = ctx.tmp / "whole.pth"
    torch.save({"state_dict": {"ctx": torch.zeros(16, 64)}, "epoch": 1}, path)
    model_dir = ctx.model_dir(content=path.read_bytes()[:200])
    return ctx.train(flags=("--eval-only", "--model-dir", str(model_dir)))


def _full_disk(ctx: Ctx) -> int:
    def no_space(obj, f, *args, **kwargs):  # what torch's C++ writer raises on ENOSPC
        Path(f).write_bytes(b"partial")
        raise RuntimeError("basic_ios::clear: iostream error")

    ctx.monkeypatch.setattr(torch, "save", no_space)
    return ctx.train()


def _non_finite(ctx: Ctx) -> int:
    from trainers.base import PromptTrainer

    real = PromptTrainer.compute_loss

    def exploding(self, image, label):
        loss, summary = real(self, image, label)
        return loss * float("inf"), summary

    ctx.monkeypatch.setattr(PromptTrainer, "compute_loss", exploding)
    return ctx.train()


def _download_clip_offline(ctx: Ctx) -> int:
    from tools import download_clip

    return download_clip.main(["ViT-B/16", "--cache-dir", str(ctx.tmp), "--url", OFFLINE_URL, "--no-progress"])


def _prepare_data_offline(ctx: Ctx) -> int:
    from tools import prepare_data

    return prepare_data.main(["--root", str(ctx.tmp), "--download", "eurosat", "--url", OFFLINE_URL + ".zip",
                              "--no-progress"])  # fmt: skip


def _prompt_checkpoint_as_clip(ctx: Ctx) -> int:
    path = ctx.tmp / "model-best.pth.tar"
    torch.save({"state_dict": {"prompt_learner.ctx": torch.zeros(4, 64)}, "epoch": 5}, path)
    return ctx.train("MODEL.BACKBONE.PATH", str(path))


def _unsafe_checkpoint(ctx: Ctx) -> int:
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    return ctx.train(flags=("--eval-only", "--model-dir", str(ctx.model_dir(obj={"state_dict": {}, "x": Payload()}))))


def _checkpoint_mismatch(ctx: Ctx) -> int:
    model_dir = ctx.model_dir(obj={"state_dict": {"ctx": torch.zeros(3, 3)}, "epoch": 1})
    return ctx.train(flags=("--eval-only", "--model-dir", str(model_dir)))


def _other_config(ctx: Ctx) -> int:
    assert ctx.train("OPTIM.LR", "0.002") == 0
    return ctx.train("OPTIM.LR", "0.5")


def _folder_in_use(ctx: Ctx) -> int:
    from dassl.engine.run_folder import RunFolder

    other = RunFolder(str(ctx.tmp / "out"))
    other.acquire()  # another run holds the folder
    try:
        return ctx.train()
    finally:
        other.release()


def _stale_teacher_bank(ctx: Ctx) -> int:
    """A bank built for one teacher, then named by TEACHER_BANK in a run distilled from another."""
    from tests.trainers.test_teacher_bank import write_teacher
    from tools import build_teacher_bank
    from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip

    clip = ctx.tmp / "ViT-L-14.pt"
    save_tiny_clip(make_tiny_clip("teacher", image_size=32, layers=2, patch=16, seed=3), clip)

    def opts(teacher: Path, bank: Path) -> tuple[str, ...]:
        return ("TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(clip), "TRAINER.PROMPTKD.TEACHER_CKPT", str(teacher),
                "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "1", "TRAINER.PROMPTKD.PREC", "fp32",
                "TRAINER.PROMPTKD.BANK_VIEWS", "2", "TRAINER.PROMPTKD.TEACHER_BANK", str(bank))  # fmt: skip

    first = write_teacher(ctx.tmp / "teacher-a.pth.tar", clip, seed=5)
    second = write_teacher(ctx.tmp / "teacher-b.pth.tar", clip, seed=6)
    assert build_teacher_bank.main(ctx.train_argv(*opts(first, ctx.tmp / "banks"), trainer="PromptKD")) == 0
    (folder,) = [p.parent for p in (ctx.tmp / "banks").glob("*/manifest.json")]
    return ctx.train(*opts(second, folder), trainer="PromptKD")


def _export_a_coop_run(ctx: Ctx) -> int:
    from tools import export_student

    assert ctx.train() == 0
    checkpoint = ctx.tmp / "out" / "prompt_learner" / "model.pth.tar-1"
    return export_student.main([str(checkpoint), "--out", str(ctx.tmp / "export")])


def _label_two_names(split: dict) -> None:
    split["test"][0][2] = "not " + split["test"][0][2]


def _label_beyond(split: dict) -> None:
    split["train"][0][1] = 99


@dataclass
class Case:
    run: Callable[[Ctx], int]
    code: int
    says: tuple[str, ...]  # regular expressions, all of which the message must contain
    stream: str = "err"


CASES: dict[str, Case] = {
    "config-unknown-key": Case(lambda c: c.train("OPTIM.LRR", "0.1"), 2, (r"Unknown config key 'OPTIM\.LRR'", r"OPTIM\.LR")),
    "unknown-trainer": Case(lambda c: c.train(trainer="CoOP"), 2, (r"Unknown trainer 'CoOP'", "Did you mean 'CoOp'", "--trainer")),
    "dataset-folder-missing": Case(
        lambda c: c.train(data=c.tmp / "nowhere"), 2, ("Demo not found", "make_demo_dataset", "DATASET.ROOT")
    ),
    "split-invalid-json": Case(
        lambda c: c.train(data=c.data(raw='{"train": [["a.png", 0, "x"],')), 2,
        (r"split_demo\.json is not valid json", "line 1, column", "make_demo_dataset"),
    ),
    "split-malformed-entries": Case(
        lambda c: c.train(data=c.data(lambda s: s["train"].__setitem__(0, ["a.png", 0]))), 2,
        (r"split_demo\.json cannot be used", r'train\[0\] = \["a.png", 0\]', r"\[relative_path, int_label, classname\]"),
    ),
    "split-label-beyond-class-count": Case(
        lambda c: c.train(data=c.data(_label_beyond)), 2,
        (r"labels \[99\] are beyond the class count", r"must be 0\.\.\d+", r"train\[0\]"),
    ),
    "split-label-two-class-names": Case(
        lambda c: c.train(data=c.data(_label_two_names)), 2, (r"label \d+ has more than one class name", r"test\[0\]"),
    ),
    "clip-file-missing": Case(
        lambda c: c.train("MODEL.BACKBONE.PATH", str(c.tmp / "none.pt")), 2,
        ("CLIP checkpoint not found", r"MODEL\.BACKBONE\.PATH", "download_clip.py"),
    ),
    "clip-file-is-a-prompt-checkpoint": Case(
        _prompt_checkpoint_as_clip, 2, ("prompt-learning checkpoint, epoch 5, not CLIP weights", "TEACHER_CKPT", "--model-dir"),
    ),
    "checkpoint-truncated": Case(
        _truncated_checkpoint, 2, (r"Cannot read checkpoint .*model-best\.pth\.tar \(200 bytes\)", "truncated or corrupt", "rerun"),
    ),
    "checkpoint-unsafe-pickle": Case(_unsafe_checkpoint, 2, ("Refusing to load", "print", "Nothing from it was imported")),
    "checkpoint-mismatch": Case(_checkpoint_mismatch, 2, ("does not fit this CoOp model", r"wrong shape: ctx")),
    "disk-full-while-saving": Case(
        _full_disk, 2, (r"Could not write .*model", "iostream error", "free", "--output-dir"),
    ),
    "teacher-checkpoint-missing": Case(
        lambda c: c.train("TRAINER.PROMPTKD.TEACHER_CKPT", str(c.tmp / "no-teacher"), trainer="PromptKD"), 2,
        ("Teacher checkpoint not found", "base2new_train_teacher.sh", r"TRAINER\.PROMPTKD\.TEACHER_CKPT"),
    ),
    "non-finite-loss": Case(_non_finite, 3, (r"OPTIM\.LR", "bf16")),
    "download-clip-offline": Case(
        _download_clip_offline, 2, (r"Cannot reach 127\.0\.0\.1:9", "rerun when online", r"ViT-B-16\.pt"),
    ),
    "prepare-data-offline": Case(
        _prepare_data_offline, 1, (r"eurosat: ERROR: Cannot reach 127\.0\.0\.1:9", "rerun when online"), stream="out",
    ),
    "config-bad-value": Case(
        lambda c: c.train("TRAINER.COOP.PREC", "fp8"), 2, (r"TRAINER\.COOP\.PREC must be one of", "fp8"),
    ),
    "model-dir-file-missing": Case(
        lambda c: c.train(flags=("--eval-only", "--model-dir", str(c.tmp / "nothing"), "--load-epoch", "3")),
        2, (r"Model not found at .*model\.pth\.tar-3", "--model-dir and --load-epoch"),
    ),
    "plugin-not-found": Case(
        lambda c: c.train(flags=("--plugin", str(c.tmp / "my_method.py"))), 2,
        ("plugin file not found:", r"my_method\.py", "--plugin / PROMPTKD_PLUGINS"),
    ),
    "plugin-syntax-error": Case(
        lambda c: (c.tmp.joinpath("bad.py").write_text("def f(:\n"), c.train(flags=("--plugin", str(c.tmp / "bad.py"))))[1],
        2, (r"plugin file .*bad\.py has a syntax error at line 1",),
    ),
    "run-folder-other-config": Case(_other_config, 2, (r"OPTIM\.LR: 0\.002 -> 0\.5", "another --output-dir", "FORCE=1")),
    "run-folder-in-use": Case(_folder_in_use, 2, (r"in use by another run \(pid \d+", "another\n?.*--output-dir")),
    "teacher-bank-stale": Case(
        _stale_teacher_bank, 2, ("The teacher bank .* was built for other inputs", "teacher_checkpoint_sha256 differ",
                                 r"TRAINER\.PROMPTKD\.TEACHER_BANK to its parent folder \(or auto\)"),
    ),
    "export-not-a-student": Case(
        _export_a_coop_run, 2, (r"model\.pth\.tar-1 is a CoOp checkpoint", "student's class vectors",
                                      "Re-run the PromptKD training"),
    ),
}


@pytest.mark.parametrize("case_id", list(CASES))
def test_user_error_is_a_message_with_the_fix(case_id, assets, tmp_path, monkeypatch, capsys):
    case = CASES[case_id]
    monkeypatch.delenv("PROMPTKD_DEBUG", raising=False)
    monkeypatch.setenv("PROMPTKD_CACHE_DIR", str(tmp_path / "cache"))
    code = case.run(Ctx(assets, tmp_path, monkeypatch))
    captured = capsys.readouterr()
    text = captured.err if case.stream == "err" else captured.out
    assert code == case.code, captured.err[-2000:]
    if case.stream == "err":
        assert "\nError: " in text
    for pattern in case.says:
        assert re.search(pattern, text), f"{pattern!r} not in:\n{text[-3000:]}"
    assert "Traceback" not in captured.err + captured.out
    assert "publishes no SHA256" not in captured.out  # offline is not "no hash"
    assert "pwned" not in captured.out  # nothing from a checkpoint ran


def test_every_documented_error_has_a_case_and_every_case_is_documented():
    doc = (REPO_ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `([a-z0-9-]+)` \|", doc, flags=re.MULTILINE)
    assert sorted(documented) == sorted(CASES)


@pytest.mark.parametrize("how", ["env", "flag"])
def test_debug_switch_shows_the_traceback(how, assets, tmp_path, monkeypatch):
    from dassl.config import ConfigError

    ctx = Ctx(assets, tmp_path, monkeypatch)
    if how == "env":
        monkeypatch.setenv("PROMPTKD_DEBUG", "1")
        flags: tuple[str, ...] = ()
    else:
        monkeypatch.delenv("PROMPTKD_DEBUG", raising=False)
        flags = ("--debug",)
    with pytest.raises(ConfigError, match="OPTIM.LRR"):
        ctx.train("OPTIM.LRR", "0.1", flags=flags)


def test_unexpected_errors_keep_their_traceback(assets, tmp_path, monkeypatch):
    import train

    def bug(args):
        raise ZeroDivisionError("a bug, not a user error")

    monkeypatch.setattr(train, "run", bug)
    with pytest.raises(ZeroDivisionError):
        Ctx(assets, tmp_path, monkeypatch).train()


def test_all_user_facing_errors_derive_from_user_error():
    from dassl.config import ConfigError
    from dassl.utils.download import DownloadError
    from dassl.utils.errors import NonFiniteError, UserError
    from dassl.utils.tools import FileWriteError, UnknownNameError
    from dassl.utils.torchtools import CheckpointReadError, UnsafeCheckpointError
    from datasets.common import DatasetError, DatasetNotFoundError
    from tools.prepare_data import PrepareError
    from trainers.backbone import ClipCheckpointError
    from trainers.base import CheckpointMismatchError
    from trainers.teacher import TeacherCheckpointError

    for cls in (ConfigError, DownloadError, FileWriteError, UnknownNameError, CheckpointReadError,
                UnsafeCheckpointError, DatasetError, DatasetNotFoundError, PrepareError, ClipCheckpointError,
                CheckpointMismatchError, TeacherCheckpointError):  # fmt: skip
        assert issubclass(cls, UserError) and cls.exit_code == 2, cls
    assert NonFiniteError.exit_code == 3
    assert str(CheckpointMismatchError("no quotes")) == "no quotes"
