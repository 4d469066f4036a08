"""Run the toolkit end to end on the built-in demo data, on CPU, in about a minute.

    python tools/demo.py [--out output/demo] [--device cpu|cuda]

It writes the demo dataset (coloured shapes, 6 base + 6 novel classes) and tiny random-weight CLIP checkpoints
in OpenAI's format into the work dir, then runs the real entry point (``train.py``'s code path, the same one the
scripts use) and prints base / novel / HM accuracy per method. The backbones are tiny RANDOM-weight models, so
the numbers only show that the pipeline works; with real weights (``python tools/download_clip.py ViT-B/16``)
and real datasets (README, "Preparing datasets") the same commands reproduce the papers' protocols.

Methods available so far: zero-shot CLIP. The prompt-learning methods join as they land.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tabulate import tabulate  # noqa: E402

import train  # noqa: E402
from datasets.demo import make_demo_dataset  # noqa: E402
from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip, tiny_clip_filename  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 32


def harmonic_mean(base: float, novel: float) -> float:
    return 2 * base * novel / (base + novel) if base + novel > 0 else 0.0


def prepare(out: Path) -> tuple[Path, Path]:
    """Demo data + a tiny student-shaped CLIP checkpoint under ``out``."""
    data = out / "data"
    if not (data / "demo" / "split_demo.json").is_file():
        print(f"Writing the demo dataset to {data / 'demo'}")
        make_demo_dataset(data)
    clip_dir = out / "clip"
    student = clip_dir / tiny_clip_filename("student")
    if not student.is_file():
        print(f"Writing a tiny random-weight CLIP checkpoint to {student}")
        save_tiny_clip(make_tiny_clip("student", image_size=IMAGE_SIZE, layers=2, seed=1), student)
    return data, student


def run_train(argv: list[str]) -> dict:
    """Run ``train.py`` in-process with ``argv``; return the run's results.json."""
    args = train.build_parser().parse_args(argv)
    trainer = train.run(args)
    with open(Path(trainer.output_dir) / "results.json", encoding="utf-8") as f:
        return json.load(f)


def zero_shot(data: Path, student: Path, out: Path, device_opts: list[str]) -> dict[str, float]:
    accuracy = {}
    for subsample in ("base", "new"):
        results = run_train(
            [
                "--root", str(data),
                "--trainer", "ZeroshotCLIP",
                "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
                "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"),
                "--output-dir", str(out / "runs" / "ZeroshotCLIP" / f"test_{subsample}"),
                "--eval-only",
                "MODEL.BACKBONE.PATH", str(student),
                "INPUT.SIZE", f"({IMAGE_SIZE}, {IMAGE_SIZE})",
                "DATALOADER.NUM_WORKERS", "0",
                "DATASET.SUBSAMPLE_CLASSES", subsample,
                *device_opts,
            ]
        )
        accuracy[subsample] = results["final"]["accuracy"]
    return accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO_ROOT / "output" / "demo"), help="work dir (default: output/demo)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default: cpu)")
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    device_opts = ["USE_CUDA", "True" if args.device == "cuda" else "False"]
    console = sys.stdout
    data, student = prepare(out)

    rows = []
    zs = zero_shot(data, student, out, device_opts)
    rows.append(["Zero-shot CLIP", zs["base"], zs["new"], harmonic_mean(zs["base"], zs["new"])])

    sys.stdout = console  # train.py tees stdout into each run's log.txt; the summary goes to the console only
    table = tabulate(rows, headers=["method", "base", "novel", "HM"], floatfmt=".2f")
    print("\n" + table)
    print(f"\nRuns (log.txt, results.json, config.yaml): {out / 'runs'}")
    print(f"Demo data: {data / 'demo'}   tiny CLIP checkpoint: {student}")
    print(
        "\nNote: the backbones here are tiny random-weight CLIPs, so the accuracies only show that the pipeline "
        "runs. For real numbers, download OpenAI's weights (python tools/download_clip.py ViT-B/16 ViT-L/14), "
        "prepare a dataset (README) and run the scripts under scripts/."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
