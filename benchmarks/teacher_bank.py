"""PromptKD with a teacher feature bank: the student step, the bank build, its disk size, and a 3-seed sweep.

    python benchmarks/teacher_bank.py [--device cpu] [--classes 100] [--prec fp32] [--repeats 2]
                                      [--images 1000 --views 20 --epochs 20 --seeds 3] [--json FILE]

Real ViT-B/16 (student) and ViT-L/14 (teacher) shapes with random weights, batch 8, 224 px, measured side by side
in one run, in interleaved rounds (bank step, our step, original step, one build batch; medians) (``benchmarks/student_step.py`` builds the models and times the two on-the-fly steps):

* original cost model: the teacher's prompted text encoder over all classes + its image forward every step;
* ours on the fly: the class vectors computed once, the teacher image forward every step;
* bank: the teacher features of the batch's views read from a memory-mapped bank (``TeacherBank.features``, with
  the view-parameter check), then ``logit_scale * feature @ class_vectors.T``: student forward/backward only.

Bank build: teacher image features at ``--build-batch`` in eval mode (views/s), plus the cost of making a view
(decode a 500x375 JPEG, random resized crop, flip, normalize) in one loader process. Disk: bytes of real shard
files per 1,000 (image, view) pairs. Sweep: ``--seeds`` students of ``--epochs`` epochs over ``--images`` images,
*projected* from the measured per-step and per-view times (training steps only; evaluation is the same either way):
on the fly = seeds x steps x step_ours; bank = build (images x views) + seeds x steps x step_bank.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from tabulate import tabulate  # noqa: E402

from benchmarks.common import device_description, timed  # noqa: E402
from benchmarks.student_step import BATCH, build, train_step  # noqa: E402
from dassl.config import get_cfg_default  # noqa: E402
from dassl.data.views import ViewTransform, view_generator  # noqa: E402
from trainers.backbone import TOKEN_LAYOUTS, set_token_layout  # noqa: E402
from trainers.config import extend_cfg  # noqa: E402
from trainers.promptkd import kd_loss  # noqa: E402
from trainers.teacher_bank import TeacherBank, _save_npy  # noqa: E402

D_TEACHER = 768
BANK_IMAGES = 64  # images in the on-disk bank the timed steps read from


def make_bank(directory: Path, n_images: int, n_views: int, n_params: int, dtype: str) -> TeacherBank:
    """A one-shard bank of random unit features (the layout ``TeacherBank.build`` writes)."""
    bank = TeacherBank(directory, {"n_images": n_images, "views": n_views, "dtype": dtype}, shard_size=n_images)
    features = F.normalize(torch.randn(n_images, n_views, D_TEACHER), dim=-1).numpy()
    _save_npy(features.astype(np.float16 if dtype == "fp16" else np.float32), directory / "features-00000.npy")
    _save_npy(np.zeros((n_images, n_views, n_params)), directory / "params-00000.npy")
    bank.manifest = {"logit_scale": 100.0}
    return bank


def bank_step(precision, student, optimizer, class_vectors, images, bank: TeacherBank, batch: dict) -> None:
    """PromptKD.parse_batch_train + compute_loss with a bank, + the backward and SGD step (as train_step)."""
    features = bank.features(batch["index"], batch["view"], batch["view_params"]).to(images.device)
    with precision.autocast():
        with torch.no_grad():
            teacher_logits = bank.logit_scale.to(images.device) * features @ class_vectors.t()
        student_logits = student.logit_scale.exp().float() * student(images).float() @ class_vectors.t()
        loss = kd_loss(student_logits, teacher_logits.float(), 1.0, 1000.0)["loss"]
    optimizer.zero_grad(set_to_none=True)
    precision.backward(loss)
    precision.step([optimizer])


def view_cost(n: int = 20) -> float:
    """Seconds to decode a 500x375 JPEG and make one view of it (random resized crop, flip, normalize)."""
    cfg = extend_cfg(get_cfg_default())
    cfg.INPUT.SIZE = (224, 224)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.TRANSFORMS = ["random_resized_crop", "random_flip", "normalize"]
    transform = ViewTransform(cfg)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(buffer, "JPEG")
    start = time.perf_counter()
    for v in range(n):
        transform(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), view_generator(0, 0, v))
    return (time.perf_counter() - start) / n


def disk_per_1000(directory: Path, n_params: int) -> dict[str, float]:
    """MiB of shard files (features + view parameters) per 1,000 (image, view) pairs, fp16 and fp32."""
    sizes = {}
    for dtype, np_dtype in (("fp16", np.float16), ("fp32", np.float32)):
        _save_npy(np.zeros((1000, 1, D_TEACHER), dtype=np_dtype), directory / f"f-{dtype}.npy")
        _save_npy(np.zeros((1000, 1, n_params)), directory / f"p-{dtype}.npy")
        total = (directory / f"f-{dtype}.npy").stat().st_size + (directory / f"p-{dtype}.npy").stat().st_size
        sizes[dtype] = total / 2**20
    return sizes


def switch_layout(visual, hooks, layout: str) -> None:
    """Re-run an image tower whose prompt hooks are attached in another token layout (the hooks follow)."""
    set_token_layout(visual, layout)
    hooks.batch_first = layout == "batch_first"


def layout_probe(precision, teacher, student, images, repeats: int, configured: str) -> dict[str, float]:
    """Student forward/backward and teacher image forward in both token layouts, interleaved (load drifts)."""
    towers = ((student.image_encoder, student._vision_hooks), (teacher.model.image_encoder, teacher.model._vision_hooks))

    def student_pass() -> None:
        with precision.autocast():
            loss = student(images).float().square().sum()
        loss.backward()

    def teacher_pass() -> None:
        with torch.no_grad(), precision.autocast():
            teacher.image_features(images)

    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name in TOKEN_LAYOUTS:
            for visual, hooks in towers:
                switch_layout(visual, hooks, name)
            times.setdefault(f"student_fwd_bwd_{name}", []).append(timed(student_pass, images.device, 1, warmup=0))
            times.setdefault(f"teacher_image_{name}", []).append(timed(teacher_pass, images.device, 1, warmup=0))
    for visual, hooks in towers:
        switch_layout(visual, hooks, configured)
    student.zero_grad(set_to_none=True)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--prec", default="fp32", choices=["fp32", "fp16", "bf16", "amp"])
    parser.add_argument("--repeats", type=int, default=2,
                        help="interleaved rounds of timed steps (median; after 1 warm-up round)")
    parser.add_argument("--build-batch", type=int, default=32, help="teacher batch when building the bank")
    parser.add_argument("--images", type=int, default=1000, help="images of the projected sweep")
    parser.add_argument("--views", type=int, default=20, help="views per image (TRAINER.PROMPTKD.BANK_VIEWS)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--layout", action="store_true",
                        help="also time the student and teacher towers in both token layouts (the 7 %% question)")
    parser.add_argument("--token-layout", default="tokens_first", choices=TOKEN_LAYOUTS,
                        help="MODEL.BACKBONE.TOKEN_LAYOUT of both towers (default: the trainers' default)")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Device: {device_description(device)}; batch {BATCH}; 224 px; {args.classes} classes; {args.prec}; "
          f"{args.token_layout}; load average {load:.2f}", flush=True)  # fmt: skip

    precision, teacher, student, optimizer, class_vectors = parts = build(args.classes, args.prec, device, args.token_layout)
    images = torch.randn(BATCH, 3, 224, 224, device=device)
    n_params = 5  # random_resized_crop (4) + random_flip (1)
    with tempfile.TemporaryDirectory() as tmp:
        bank = make_bank(Path(tmp), BANK_IMAGES, args.views, n_params, "fp16")
        rng = np.random.default_rng(0)

        def one_bank_step() -> None:
            index = torch.from_numpy(rng.choice(BANK_IMAGES, BATCH, replace=False))
            batch = {"index": index, "view": torch.from_numpy(rng.integers(0, args.views, BATCH)),
                     "view_params": torch.zeros(BATCH, n_params, dtype=torch.float64)}  # fmt: skip
            bank_step(precision, student, optimizer, class_vectors, images, bank, batch)

        build_images = torch.randn(args.build_batch, 3, 224, 224, device=device)

        def build_batch() -> None:
            with torch.no_grad(), precision.autocast():
                teacher.image_features(build_images)

        variants = {"bank": one_bank_step, "ours": lambda: train_step(*parts, images, False),
                    "original": lambda: train_step(*parts, images, True), "build_batch": build_batch}  # fmt: skip
        for name, fn in variants.items():  # warm-up of the steps (one build batch is long enough to be timed cold)
            if name != "build_batch":
                fn()
        # interleaved rounds, so that a load that drifts during the run hits every variant alike
        times: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.repeats):
            for name, fn in variants.items():
                times[name].append(timed(fn, device, 1, warmup=0))
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        median = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
        step = {name: median[name] for name in ("bank", "ours", "original")}
        teacher_per_view = median["build_batch"] / args.build_batch
        per_view = view_cost()
        print(f"bank build: teacher {teacher_per_view:.3f} s/view at batch {args.build_batch}, "
              f"view making {per_view * 1000:.1f} ms/view", flush=True)  # fmt: skip
        disk = disk_per_1000(Path(tmp), n_params)
    layout = layout_probe(precision, teacher, student, images, args.repeats, args.token_layout) if args.layout else {}

    build_rate = 1 / (teacher_per_view + per_view)  # views/s, one process making views and running the teacher
    steps = args.epochs * (args.images // BATCH)
    sweep = {
        "original_s": args.seeds * steps * step["original"],
        "on_the_fly_s": args.seeds * steps * step["ours"],
        "bank_build_s": args.images * args.views / build_rate,
        "bank_steps_s": args.seeds * steps * step["bank"],
    }
    sweep["bank_s"] = sweep["bank_build_s"] + sweep["bank_steps_s"]
    record = {
        "device": device_description(device), "load_average": load, "classes": args.classes, "prec": args.prec,
        "token_layout": args.token_layout,
        "batch": BATCH, "step_s": step, "speedup_vs_ours": step["ours"] / step["bank"],
        "speedup_vs_original": step["original"] / step["bank"], "teacher_s_per_view": teacher_per_view,
        "view_making_s_per_view": per_view, "build_views_per_s": build_rate, "disk_mib_per_1000_views": disk,
        "rounds_s": times, "sweep": {"images": args.images, "views": args.views, "epochs": args.epochs, "seeds": args.seeds, **sweep,
                  "bank_over_on_the_fly": sweep["bank_s"] / sweep["on_the_fly_s"]}, "layout_s": layout,
    }  # fmt: skip

    print("\n" + tabulate(
        [["step with the bank", f"{step['bank']:.2f} s", "1.0x"],
         ["step on the fly (ours)", f"{step['ours']:.2f} s", f"{record['speedup_vs_ours']:.2f}x"],
         ["step original cost model", f"{step['original']:.2f} s", f"{record['speedup_vs_original']:.2f}x"]],
        headers=["", "time", "bank is faster by"]))  # fmt: skip
    h = 3600
    print("\n" + tabulate(
        [["original cost model", f"{sweep['original_s'] / h:.1f} h", f"{sweep['original_s'] / sweep['on_the_fly_s']:.2f}"],
         ["ours on the fly", f"{sweep['on_the_fly_s'] / h:.1f} h", "1.00"],
         [f"bank: build {args.images} x {args.views} views", f"{sweep['bank_build_s'] / h:.1f} h", ""],
         [f"bank: {args.seeds} x {steps} student steps", f"{sweep['bank_steps_s'] / h:.1f} h", ""],
         ["bank total", f"{sweep['bank_s'] / h:.1f} h", f"{record['sweep']['bank_over_on_the_fly']:.2f}"]],
        headers=[f"{args.seeds}-seed sweep (projected)", "training steps", "x on the fly"]))  # fmt: skip
    print(f"\nBank build: {build_rate:.2f} views/s ({teacher_per_view:.3f} s teacher + {per_view * 1000:.1f} ms view "
          f"per view); disk per 1,000 image-views: {disk['fp16']:.2f} MiB fp16, {disk['fp32']:.2f} MiB fp32")  # fmt: skip
    if layout:
        print("\nToken layout (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in layout.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
