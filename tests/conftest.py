"""Shared fixtures: where the golden fixtures live, and a fresh registry state per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# One thread per test process (and for the scripts and train.py subprocesses the tests start): tiny models run
# fastest on one thread, and on a busy machine a process per core beats processes that each take every core.
# Set OMP_NUM_THREADS to use more.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = os.environ.get(_var) or "1"
TEST_THREADS = int(os.environ["OMP_NUM_THREADS"])
# The scripts the tests start use the interpreter that runs the suite (a venv need not be activated).
os.environ.setdefault("PYTHON", sys.executable)


def pytest_configure(config) -> None:
    import torch

    torch.set_num_threads(TEST_THREADS)

# Tests that train run on the CPU; `PROMPTKD_TEST_DEVICE=cuda` runs them on a GPU instead (device checks).
TEST_DEVICE = os.environ.get("PROMPTKD_TEST_DEVICE", "cpu")
USE_CUDA_OPT = "True" if TEST_DEVICE == "cuda" else "False"


def _golden_root() -> Path:
    env = os.environ.get("PROMPTKD_GOLDEN")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden fixtures made by the original code (``../shared/golden`` or ``$PROMPTKD_GOLDEN``).

    In CI (``CI`` set) a missing folder is a failure, not a skip, so parity can never silently stop being tested.
    """
    root = _golden_root()
    if not (root / "README.md").is_file():
        from tools.check_golden import golden_help

        message = golden_help(root)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def make_tiny_caltech(
    root: Path,
    classes: tuple[str, ...] = ("Faces", "Leopards", "airplanes", "anchor"),
    n_train: int = 4,
    n_val: int = 2,
    n_test: int = 3,
    size: int = 40,
) -> Path:
    """Write a Caltech101-layout dataset (``<root>/caltech-101``) with coloured images and a CoOp split json.

    Each class has its own colour, so even a tiny random CLIP sees class-dependent inputs.
    """
    import json

    from PIL import Image

    names = {"Faces": "face", "Leopards": "leopard", "airplanes": "airplane", "Motorbikes": "motorbike"}
    dataset_dir = root / "caltech-101"
    image_dir = dataset_dir / "101_ObjectCategories"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, folder in enumerate(classes):
        (image_dir / folder).mkdir(parents=True, exist_ok=True)
        colour = ((53 * label) % 256, (97 * label + 80) % 256, (151 * label + 30) % 256)
        index = 0
        for part, count in (("train", n_train), ("val", n_val), ("test", n_test)):
            for _ in range(count):
                index += 1
                relpath = f"{folder}/image_{index:04d}.jpg"
                img = Image.new("RGB", (size + 3 * index, size), colour)
                img.putpixel((index % size, index % size), (255, 255, 255))
                img.save(image_dir / relpath, quality=95)
                split[part].append([relpath, label, names.get(folder, folder)])
    (dataset_dir / "split_zhou_Caltech101.json").write_text(json.dumps(split))
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, which also keeps them fast on a busy machine (opt in per module)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_tiny_demo(root: Path, *, seed: int, layers: int = 2, text_layers: int | None = None) -> tuple[Path, Path]:
    """The demo dataset at 32 px and a tiny ViT-B/16-shaped CLIP under ``root``: (data root, checkpoint)."""
    from datasets.demo import make_demo_dataset
    from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip

    make_demo_dataset(root / "data", size=32)
    ckpt = root / "ViT-B-16.pt"
    save_tiny_clip(make_tiny_clip("student", image_size=32, layers=layers, text_layers=text_layers, seed=seed), ckpt)
    return root / "data", ckpt


def run_tiny(assets: tuple[Path, Path], trainer: str, config: str, out: Path, *opts: str, flags=()):
    """``train.py`` in-process on ``make_tiny_demo``'s assets: 1 epoch, 2 shots of the base classes, fp32.

    ``config``: ``<Trainer>/<stem>`` under configs/trainers; ``opts`` come last, so they override.
    """
    import train
    from dassl.engine import TRAINER_REGISTRY

    data, ckpt = assets
    node = TRAINER_REGISTRY.get(trainer).CONFIG_NODE  # the TRAINER.<node> holding PREC
    argv = [
        "--root", str(data), "--seed", "1", "--trainer", trainer,
        "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
        "--config-file", str(REPO_ROOT / "configs/trainers" / f"{config}.yaml"),
        "--output-dir", str(out), *flags,
        "MODEL.BACKBONE.PATH", str(ckpt), "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1",
        "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", "DATASET.SUBSAMPLE_CLASSES", "base",
        f"TRAINER.{node}.PREC", "fp32", "USE_CUDA", USE_CUDA_OPT, *opts,
    ]  # fmt: skip
    return train.run(train.build_parser().parse_args(argv))


def forward_backward_on_one_batch(trainer, steps: int = 6) -> list[float]:
    """The trainer's own step ``steps`` times on one fixed batch (no LR change); returns the losses. Afterwards
    asserts that frozen tensors got no gradient and every trainable one a non-zero gradient."""
    batch = next(iter(trainer.train_loader_x))
    trainer.batch_idx, trainer.num_batches = 0, 10**6  # no LR step inside forward_backward
    trainer.set_model_mode("train")
    losses = [trainer.forward_backward(batch)["loss"] for _ in range(steps)]
    params = list(trainer.model.parameters())
    assert all(p.grad is None for p in params if not p.requires_grad)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params if p.requires_grad)
    return losses


def sgd_losses(trainer, images, labels, params, steps: int = 6, lr: float = 0.002) -> list[float]:
    """SGD (momentum 0.9) on ``trainer.compute_loss`` over one fixed batch; returns the losses."""
    import torch

    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss, _ = trainer.compute_loss(images, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="session")
def trained_student(tmp_path_factory):
    """A tiny PromptSRC teacher and the PromptKD student distilled from it (1 epoch each, random 112 px CLIPs), shared
    by the tests of the saved student (eval-only, predict, export): ``tools.demo.Demo`` with the run done.

    Returns ``(demo, run_dir)``; tests must not modify the run folder (copy it first).
    """
    from tools.demo import Demo

    demo = Demo(tmp_path_factory.mktemp("student"), "cpu", epochs=1, backbones="random")
    demo.teacher()
    demo.promptkd()
    return demo, demo.out / "runs" / "PromptKD" / f"seed_{demo.seed}"
