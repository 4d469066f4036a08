"""Kill runs with SIGKILL at random moments, restart them with the same command, and count how many end exactly
as an uninterrupted run: trainable tensors, optimizer/scheduler/RNG state of every checkpoint, ``results.json``
(its config hash aside, which names the output folder) and the ``parse_results`` table.

    python benchmarks/fault_injection.py --trials 20            # tiny CoOp + PromptKD runs on the demo data, CPU

Kills are injected at named points of the code (``dassl/utils/faults.py``): while a checkpoint is written, after
each checkpoint file, after an evaluation is recorded, after a training step. The same functions drive the
fault-injection test (tests/test_fault_injection.py).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from dassl.utils.faults import FAULT_ENV, TRACE_ENV  # noqa: E402
from tools.demo import Demo, student_opts  # noqa: E402

KILL_POINTS = ("checkpoint-write", "checkpoint-saved", "evaluation-recorded", "batch")
CHECKPOINT_KEYS = ("state_dict", "epoch", "optimizer", "scheduler", "val_result", "rng_state", "best_result",
                   "fingerprint", "grad_scaler")  # fmt: skip


class World:
    """The demo data, tiny CLIPs and a trained PromptSRC teacher; commands of a tiny CoOp and PromptKD run."""

    def __init__(self, root: Path, epochs: int = 3) -> None:
        self.demo = Demo(root, "cpu", epochs)
        self.epochs = epochs
        self.demo.teacher()

    def command(self, method: str, out: str) -> list[str]:
        """The ``train.py`` argv of ``method`` writing to ``<root>/runs/<out>``."""
        demo, opts = self.demo, student_opts(self.demo.assets, self.epochs)
        if method == "CoOp":
            return demo.argv("CoOp", "CoOp/vit_b16.yaml", out, *opts, "TRAINER.COOP.CTX_INIT", "a photo of a",
                             "OPTIM.LR", "0.02", "DATASET.NUM_SHOTS", "4", "DATASET.SUBSAMPLE_CLASSES", "base",
                             "TEST.FINAL_MODEL", "best_val")  # fmt: skip
        teacher = demo.out / "runs" / "PromptSRC_teacher" / "train_base" / "VLPromptLearner"
        return demo.argv("PromptKD", "PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml", out, *opts,
                         "DATASET.NUM_SHOTS", "0", "TRAINER.MODAL", "base2novel",
                         "TRAINER.PROMPTKD.TEACHER_CKPT", str(teacher), "TRAINER.PROMPTKD.KD_WEIGHT", "1000.0")  # fmt: skip

    def run_dir(self, out: str) -> Path:
        return self.demo.out / "runs" / out


def run_train(argv: list[str], fault: tuple[str, int] | None = None, trace: Path | None = None) -> int:
    """``python train.py argv`` in a subprocess (one CPU thread); returns its exit code (-9: killed)."""
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, TRACE_ENV)}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if fault is not None:
        env[FAULT_ENV] = f"{fault[0]}:{fault[1]}"
    if trace is not None:
        env[TRACE_ENV] = str(trace)
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    if proc.returncode not in (0, -9):
        raise RuntimeError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.returncode


def point_counts(world: World, method: str, out: str) -> collections.Counter:
    """Run ``method`` uninterrupted into ``out`` and count how often it passes each kill point."""
    trace = world.run_dir(out).parent / f".{Path(out).name}-trace.txt"
    trace.parent.mkdir(parents=True, exist_ok=True)
    trace.unlink(missing_ok=True)
    assert run_train(world.command(method, out), trace=trace) == 0
    return collections.Counter(trace.read_text().split())


def run_with_kills(world: World, method: str, out: str, faults: list[tuple[str, int]]) -> int:
    """Start the same command once per fault (each may kill it), then once more to finish; returns the kills."""
    argv, kills = world.command(method, out), 0
    for fault in faults:
        kills += run_train(argv, fault) == -9
    assert run_train(argv) == 0
    return kills


def _equal(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def differences(reference: Path, other: Path) -> list[str]:
    """What differs between two finished run folders (empty: they are the same record)."""
    import json

    found = []
    ref_results, results = (json.loads((d / "results.json").read_text()) for d in (reference, other))
    for data in (ref_results, results):
        data.pop("config_hash", None)
    if ref_results != results:
        found.append("results.json")
    ref_files = sorted(str(p.relative_to(reference)) for p in reference.glob("*/*.pth.tar*"))
    files = sorted(str(p.relative_to(other)) for p in other.glob("*/*.pth.tar*"))
    if ref_files != files:
        found.append(f"checkpoint files {ref_files} != {files}")
    for name in set(ref_files) & set(files):
        a, b = (torch.load(d / name, map_location="cpu", weights_only=True) for d in (reference, other))
        found += [f"{name}: {key}" for key in CHECKPOINT_KEYS if not _equal(a.get(key), b.get(key))]
    if list(other.rglob(".*.tmp")):
        found.append("temp files left behind")
    return found


def table(root: Path) -> str:
    from tools import parse_results

    return parse_results.render(parse_results.collect(root))


def random_faults(counts: collections.Counter, rng: random.Random, n: int) -> list[tuple[str, int]]:
    points = [p for p in KILL_POINTS if counts.get(p)]
    return [(point, rng.randint(1, counts[point])) for point in (rng.choice(points) for _ in range(n))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="kill-and-restart trials per method (default: 10)")
    parser.add_argument("--kills", type=int, default=2, help="kills per trial (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", help="where to build the world (default: a temp dir)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(args.work_dir or tmp))
        print(f"{'method':<10} {'trial':>5} {'kills':>5}  result   kill points")
        tally = collections.Counter()
        for method in ("CoOp", "PromptKD"):
            counts = point_counts(world, method, f"reference/{method}/seed_1")
            reference = world.run_dir(f"reference/{method}/seed_1")
            for trial in range(args.trials):
                out = f"trial_{trial}/{method}/seed_1"
                faults = random_faults(counts, rng, args.kills)
                kills = run_with_kills(world, method, out, faults)
                found = differences(reference, world.run_dir(out))
                if table(reference.parent) != table(world.run_dir(out).parent):
                    found.append("parse_results table")
                tally[method, not found] += 1
                print(f"{method:<10} {trial:>5} {kills:>5}  {'same' if not found else 'DIFFERS':<8} "
                      f"{', '.join(f'{p}:{n}' for p, n in faults)}{'  ' + '; '.join(found) if found else ''}")  # fmt: skip
        for method in ("CoOp", "PromptKD"):
            same, differ = tally[method, True], tally[method, False]
            print(f"{method}: {same}/{same + differ} killed-and-restarted runs identical to the uninterrupted one")
    return 0 if all(tally[m, False] == 0 for m in ("CoOp", "PromptKD")) else 1


if __name__ == "__main__":
    sys.exit(main())
