"""The teacher feature bank (trainers/teacher_bank.py): a student trained from an fp32 bank takes the same steps as
one that runs the teacher on the same views; fp16 stays within a stated tolerance; a stale bank is never used;
a partial bank resumes shard by shard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from dassl.data import DatasetWrapper
from dassl.data.views import ViewDataset
from dassl.engine import build_trainer
from dassl.engine.trainer import set_sampler_epoch
from dassl.utils import set_random_seed
from tests.conftest import REPO_ROOT
from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip
from trainers.backbone import load_clip_with_info
from trainers.prompt_models import IVLPCLIP, IVLPDesign
from trainers.teacher_bank import StaleTeacherBankError, bank_key

CONFIG = REPO_ROOT / "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml"
# fp32 bank: measured bit-identical to the on-the-fly steps on this CPU; 1e-6 relative is the promise (a teacher
# at another batch size may round differently on other hardware). fp16 bank: features rounded to 11 significant
# bits; the per-step KD loss moved by at most 1.1e-4 relative here, 1e-3 is the stated tolerance.
FP32_RTOL = 1e-6
FP16_LOSS_RTOL = 1e-3


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    from datasets.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("bank_assets")
    make_demo_dataset(root / "data", size=32)
    paths = {"data": root / "data", "teacher_clip": root / "ViT-L-14.pt", "student_clip": root / "ViT-B-16.pt"}
    save_tiny_clip(make_tiny_clip("teacher", image_size=32, layers=2, patch=16, seed=3), paths["teacher_clip"])
    save_tiny_clip(make_tiny_clip("student", image_size=32, layers=2, text_layers=1, seed=4), paths["student_clip"])
    paths["teacher"] = write_teacher(root / "teacher.pth.tar", paths["teacher_clip"], seed=5)
    paths["teacher2"] = write_teacher(root / "teacher2.pth.tar", paths["teacher_clip"], seed=6)
    return paths


def write_teacher(path: Path, clip_path: Path, seed: int) -> Path:
    """A PromptSRC-format teacher checkpoint with random prompts (depth 2 in both towers)."""
    torch.manual_seed(seed)
    clip_model, _ = load_clip_with_info("ViT-L/14", str(clip_path))
    design = IVLPDesign(n_ctx_text=4, n_ctx_vision=4, depth_text=2, depth_vision=2)
    model = IVLPCLIP(clip_model, ["anything"], design)  # prompts do not hold names
    keys = set(model.upstream_key_map().values())
    state = {k: (v + 0.5 * torch.randn_like(v)).detach() for k, v in model.named_parameters() if k in keys}
    torch.save({"state_dict": state, "epoch": 1}, path)
    return path


def student_argv(assets, tmp: Path, *opts: str, teacher: str = "teacher", seed: int = 1) -> list[str]:
    """train.py's arguments for a tiny PromptKD student: 2 shots per class (24 images), 2 epochs, fp32."""
    return [
        "--root", str(assets["data"]), "--seed", str(seed), "--trainer", "PromptKD",
        "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"), "--config-file", str(CONFIG),
        "--output-dir", str(tmp / "out"), "MODEL.BACKBONE.PATH", str(assets["student_clip"]), "INPUT.SIZE", "(32, 32)",
        "OPTIM.MAX_EPOCH", "2", "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", "USE_CUDA", "False",
        "TRAINER.PROMPTKD.PREC", "fp32", "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "2",
        "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(assets["teacher_clip"]),
        "TRAINER.PROMPTKD.TEACHER_CKPT", str(assets[teacher]), "TRAINER.PROMPTKD.CLASS_VECTOR_CACHE", str(tmp / "cv"),
        "TRAINER.PROMPTKD.BANK_VIEWS", "3", "TRAINER.PROMPTKD.BANK_BATCH_SIZE", "16",
        "TRAINER.PROMPTKD.BANK_SHARD_SIZE", "10", "TRAIN.PRINT_FREQ", "1000", *opts,
    ]  # fmt: skip


def make_trainer(assets, tmp: Path, *opts: str, teacher: str = "teacher", seed: int = 1):
    argv = student_argv(assets, tmp, *opts, teacher=teacher, seed=seed)
    cfg = train.setup_cfg(train.build_parser().parse_args(argv))
    set_random_seed(seed)
    return build_trainer(cfg)


def train_steps(trainer, epochs: int = 2) -> tuple[list[float], list[dict[str, torch.Tensor]]]:
    """The trainer's own steps over ``epochs`` epochs of its loader: the losses and the trainable tensors after each."""
    trainer.prepare_teacher()
    trainer.set_model_mode("train")
    losses, states = [], []
    for trainer.epoch in range(epochs):
        set_sampler_epoch(trainer.train_loader_x, trainer.epoch)
        trainer.num_batches = len(trainer.train_loader_x)
        for trainer.batch_idx, batch in enumerate(trainer.train_loader_x):  # noqa: B020 (the hooks read it)
            losses.append(trainer.forward_backward(batch)["loss"])
            states.append({k: v.detach().clone() for k, v in trainer.trainable_state().items()})
    return losses, states


def bank_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())


def assert_close_relative(a: torch.Tensor, b: torch.Tensor, rtol: float) -> None:
    scale = max(a.abs().max().item(), 1e-12)
    assert (a - b).abs().max().item() <= rtol * scale, (a - b).abs().max().item() / scale


def test_the_default_is_the_faithful_loader_and_views_as_data_is_a_switch(assets, tmp_path):
    plain = make_trainer(assets, tmp_path)
    assert isinstance(plain.train_loader_x.dataset, DatasetWrapper)  # ordinary random augmentation
    views = make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.VIEWS_AS_DATA", "True")
    assert isinstance(views.train_loader_x.dataset, ViewDataset)
    batch = next(iter(views.train_loader_x))
    assert set(batch["view"].tolist()) <= {0, 1, 2} and batch["view_params"].shape == (8, 5)  # crop box + flip


def test_fp32_bank_steps_equal_the_on_the_fly_steps_over_the_same_views(assets, tmp_path, capsys):
    on_the_fly = make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.VIEWS_AS_DATA", "True")
    losses_fly, states_fly = train_steps(on_the_fly)
    bank_root = tmp_path / "bank"
    from_bank = make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.TEACHER_BANK", str(bank_root),
                             "TRAINER.PROMPTKD.BANK_DTYPE", "fp32")  # fmt: skip
    losses_bank, states_bank = train_steps(from_bank)
    assert from_bank.teacher is None and "Building the teacher bank" in capsys.readouterr().out
    assert len(losses_bank) == len(losses_fly) == 2 * (len(from_bank.dm.dataset.train_x) // 8) >= 4
    np.testing.assert_allclose(losses_bank, losses_fly, rtol=FP32_RTOL, atol=0)
    for after_bank, after_fly in zip(states_bank, states_fly):  # every update
        for name in after_fly:
            assert_close_relative(after_bank[name], after_fly[name], FP32_RTOL)
    # the bank holds exactly what the teacher computes for those views (the teacher at another batch size)
    (directory,) = bank_dirs(bank_root)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["complete"] and manifest["param_names"] == ["top", "left", "height", "width", "flip"]
    bank = from_bank.bank
    batch = next(iter(on_the_fly.train_loader_x))
    with torch.no_grad():
        direct = on_the_fly.teacher.image_features(batch["img"])
    assert_close_relative(bank.features(batch["index"], batch["view"], batch["view_params"]), direct, 1e-6)
    assert bank.logit_scale.item() == on_the_fly.teacher.logit_scale.item()


def test_fp16_bank_stays_within_the_stated_tolerance(assets, tmp_path):
    losses_fly, _ = train_steps(make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.VIEWS_AS_DATA", "True"))
    bank = make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.TEACHER_BANK", str(tmp_path / "bank"))  # fp16 default
    losses_bank, _ = train_steps(bank)
    (directory,) = bank_dirs(tmp_path / "bank")
    assert np.load(directory / "features-00000.npy", mmap_mode="r").dtype == np.float16
    np.testing.assert_allclose(losses_bank, losses_fly, rtol=FP16_LOSS_RTOL)
    assert not np.allclose(losses_bank, losses_fly, rtol=1e-7, atol=0)  # it really is the rounded bank


def test_a_stale_bank_is_never_used(assets, tmp_path, capsys):
    root = tmp_path / "bank"
    opts = ("TRAINER.PROMPTKD.TEACHER_BANK", str(root))
    first = make_trainer(assets, tmp_path, *opts)
    first.prepare_teacher()
    (original,) = bank_dirs(root)
    before = {p.name: p.read_bytes() for p in original.glob("*.npy")}

    # each key input changed: another key, so another folder is built; the first bank is left as it was
    changes = [
        ((), "teacher2"),
        (("TRAINER.PROMPTKD.BANK_SEED", "1"), "teacher"),
        (("TRAINER.PROMPTKD.BANK_VIEWS", "4"), "teacher"),
        (("INPUT.RRCROP_SCALE", "(0.5, 1.0)"), "teacher"),
        (("INPUT.TRANSFORMS", "['random_resized_crop', 'normalize']"), "teacher"),
        (("TRAINER.PROMPTKD.BANK_DTYPE", "fp32"), "teacher"),
        (("MODEL.BACKBONE.TOKEN_LAYOUT", "batch_first"), "teacher"),
    ]
    keys = {original.name}
    for extra, teacher in changes:
        trainer = make_trainer(assets, tmp_path, *opts, *extra, teacher=teacher)
        trainer.prepare_teacher()
        assert "No teacher bank for these inputs" in capsys.readouterr().out
        keys.add(trainer.bank.directory.name)
    assert len(keys) == 1 + len(changes)
    assert {p.name: p.read_bytes() for p in original.glob("*.npy")} == before

    # an image's content changed (same path): the split's key changes too
    image = Path(first.dm.dataset.train_x[0].impath)
    saved = image.read_bytes()
    try:
        image.write_bytes(Path(first.dm.dataset.train_x[1].impath).read_bytes())
        changed = make_trainer(assets, tmp_path, *opts)
        changed.prepare_teacher()
        assert changed.bank.directory.name not in keys
    finally:
        image.write_bytes(saved)

    # TEACHER_BANK naming one bank's folder, built for other inputs: refused, naming what differs
    stale = make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.TEACHER_BANK", str(original), teacher="teacher2")
    with pytest.raises(StaleTeacherBankError, match="teacher_checkpoint_sha256 differ"):
        stale.prepare_teacher()
    argv = student_argv(assets, tmp_path / "cli", "TRAINER.PROMPTKD.TEACHER_BANK", str(original), teacher="teacher2")
    assert train.main(argv) == 2  # train.py: one message and exit code 2, no traceback
    err = capsys.readouterr().err
    assert "Error: The teacher bank" in err and "TEACHER_BANK to its parent folder" in err and "Traceback" not in err
    capsys.readouterr()
    fits = make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.TEACHER_BANK", str(original))
    fits.prepare_teacher()
    assert fits.bank.directory == original and "Building the teacher bank" not in capsys.readouterr().out


def test_a_partial_bank_resumes_shard_by_shard_and_a_warm_bank_changes_no_number(assets, tmp_path, capsys):
    root = tmp_path / "bank"
    opts = ("TRAINER.PROMPTKD.TEACHER_BANK", str(root), "TRAINER.PROMPTKD.BANK_DTYPE", "fp32")
    cold = make_trainer(assets, tmp_path, *opts)
    losses_cold, states_cold = train_steps(cold)
    (directory,) = bank_dirs(root)
    shards = sorted(directory.glob("features-*.npy"))
    assert len(shards) == cold.bank.n_shards == -(-len(cold.dm.dataset.train_x) // 10) >= 2
    full = {p.name: p.read_bytes() for p in directory.glob("*.npy")}
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.glob("*.npy")}
    shards[1].unlink()  # as if the build had been killed before writing this shard
    (directory / "params-00000.npy").write_bytes(b"torn")  # and a torn file from a foreign writer
    warm = make_trainer(assets, tmp_path, *opts)
    losses_warm, states_warm = train_steps(warm)
    assert "2 of" in capsys.readouterr().out  # two shards rebuilt
    assert {p.name: p.read_bytes() for p in directory.glob("*.npy")} == full
    rebuilt = ("features-00000.npy", "params-00000.npy", "features-00001.npy", "params-00001.npy")
    untouched = set(stamps) - set(rebuilt)
    assert untouched
    assert all(directory.joinpath(n).stat().st_mtime_ns == stamps[n] for n in untouched)
    assert losses_warm == losses_cold  # cold and warm bank: bit-identical
    assert all(torch.equal(a[k], b[k]) for a, b in zip(states_warm, states_cold) for k in a)


def test_a_bank_refuses_views_it_did_not_record(assets, tmp_path):
    trainer = make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.TEACHER_BANK", str(tmp_path / "bank"))
    trainer.prepare_teacher()
    batch = next(iter(trainer.train_loader_x))
    batch["view_params"][0, 0] += 1  # another crop than the one the bank's feature was computed for
    with pytest.raises(StaleTeacherBankError, match="differ from those recorded"):
        trainer.parse_batch_train(batch)


def test_seeds_share_one_bank_and_see_other_views(assets, tmp_path):
    root = tmp_path / "bank"
    views = []
    for seed in (1, 2):
        # all train images (PromptKD's default; a few-shot sample would differ per seed, and so would its bank)
        trainer = make_trainer(assets, tmp_path, "TRAINER.PROMPTKD.TEACHER_BANK", str(root), "DATASET.NUM_SHOTS", "0",
                               "TRAINER.PROMPTKD.BANK_SHARD_SIZE", "100", seed=seed)  # fmt: skip
        trainer.prepare_teacher()
        batches = list(trainer.train_loader_x)
        views.append({i: v for b in batches for i, v in zip(b["index"].tolist(), b["view"].tolist())})
    assert len(bank_dirs(root)) == 1
    common = set(views[0]) & set(views[1])
    assert common and any(views[0][i] != views[1][i] for i in common)


def test_a_student_trained_from_a_bank_ends_with_the_on_the_fly_tensors(assets, tmp_path):
    """End to end through train.py: the bank is built in before_train, and both runs end with equal tensors."""
    finals = {}
    for name, opts in (
        ("fly", ("TRAINER.PROMPTKD.VIEWS_AS_DATA", "True")),
        ("bank", ("TRAINER.PROMPTKD.TEACHER_BANK", str(tmp_path / "bank"), "TRAINER.PROMPTKD.BANK_DTYPE", "fp32")),
    ):
        out = tmp_path / name
        argv = [
            "--root", str(assets["data"]), "--seed", "1", "--trainer", "PromptKD",
            "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"), "--config-file", str(CONFIG),
            "--output-dir", str(out), "MODEL.BACKBONE.PATH", str(assets["student_clip"]), "INPUT.SIZE", "(32, 32)",
            "OPTIM.MAX_EPOCH", "2", "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", "USE_CUDA", "False",
            "TRAINER.PROMPTKD.PREC", "fp32", "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "2",
            "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(assets["teacher_clip"]),
            "TRAINER.PROMPTKD.TEACHER_CKPT", str(assets["teacher"]),
            "TRAINER.PROMPTKD.CLASS_VECTOR_CACHE", str(tmp_path / "cv"), "TRAINER.PROMPTKD.BANK_VIEWS", "2",
            "TEST.FINAL_MODEL", "last_step", *opts,
        ]  # fmt: skip
        train.run(train.build_parser().parse_args(argv))
        finals[name] = torch.load(out / "VLPromptLearner" / "model.pth.tar-2", weights_only=True)["state_dict"]
    assert finals["fly"].keys() == finals["bank"].keys()
    for key in finals["fly"]:
        assert_close_relative(finals["bank"][key].float(), finals["fly"][key].float(), 1e-6)


def test_bank_key_is_a_hash_of_the_inputs():
    inputs = {"views": 3, "bank_seed": 0}
    assert bank_key(inputs) == bank_key(dict(reversed(list(inputs.items()))))
    assert bank_key(inputs) != bank_key({**inputs, "views": 4})


def test_the_build_tool_makes_the_bank_a_student_then_reads(assets, tmp_path, capsys):
    from tools import build_teacher_bank

    opts = ("TRAINER.PROMPTKD.TEACHER_BANK", str(tmp_path / "bank"))
    # as the scripts pass it through LAUNCH: a leading train.py, then train.py's arguments
    assert build_teacher_bank.main(["train.py", *student_argv(assets, tmp_path, *opts)]) == 0
    out = capsys.readouterr().out
    assert "Building the teacher bank" in out and "Teacher bank ready" in out
    assert not (tmp_path / "out").exists()  # nothing written to the run's folder
    student = make_trainer(assets, tmp_path, *opts)
    student.prepare_teacher()
    assert student.bank.complete and "Building the teacher bank" not in capsys.readouterr().out
    assert build_teacher_bank.main(student_argv(assets, tmp_path)) == 2  # no bank configured: a user error
    assert "TRAINER.PROMPTKD.TEACHER_BANK auto" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_split_the_shards_and_build_the_same_bank(assets, tmp_path):
    """torchrun (gloo, CPU): each process builds the shards k % 2 == rank; the bank equals a one-process build."""
    import os
    import subprocess
    import sys

    from tools import build_teacher_bank

    one = build_teacher_bank.build_bank(student_argv(assets, tmp_path, "TRAINER.PROMPTKD.TEACHER_BANK", str(tmp_path / "one")))
    argv = student_argv(assets, tmp_path, "TRAINER.PROMPTKD.TEACHER_BANK", str(tmp_path / "two"))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "tools/build_teacher_bank.py", *argv],
        cwd=REPO_ROOT, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "views here (2 process(es))" in proc.stdout
    (two,) = bank_dirs(tmp_path / "two")
    assert two.name == one.directory.name
    files = sorted(p.name for p in one.directory.glob("*.npy"))
    assert files == sorted(p.name for p in two.glob("*.npy")) and len(files) == 2 * one.n_shards
    assert all((two / name).read_bytes() == (one.directory / name).read_bytes() for name in files)
    assert json.loads((two / "manifest.json").read_text())["complete"]
