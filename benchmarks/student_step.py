"""PromptKD student: time of one training step and of evaluating images, ours vs the original cost model.

    python benchmarks/student_step.py [--device cuda] [--classes 100 1000] [--prec fp32 bf16] [--eval-images 1000]

Real ViT-B/16 (student) and ViT-L/14 (teacher) shapes with random weights, batch 8, 224 px. Measured in one run
on one machine:

* ours: one teacher image forward (no grad) + student forward/backward + SGD step, against the class vectors
  computed once; evaluation runs the student alone.
* original cost model (upstream ``PromptKD.forward_backward``/``test``): the teacher's prompted text encoder over
  all classes on every step and every test batch (batch 100), plus the teacher image forward at eval.

Prints a table and the speed-up ratios; ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from benchmarks.common import device_description, random_clip, timed  # noqa: E402
from trainers.precision import Precision  # noqa: E402
from trainers.prompt_models import IVLPCLIP, IVLPDesign  # noqa: E402
from trainers.promptkd import PromptKDStudent, kd_loss  # noqa: E402
from trainers.teacher import FrozenTeacher  # noqa: E402

BATCH = 8
TEST_BATCH = 100


def build(n_classes: int, prec: str, device: torch.device, token_layout: str = "tokens_first"):
    precision = Precision(prec, device)
    classnames = [f"class number {i}" for i in range(n_classes)]
    teacher_clip = random_clip("ViT-L/14", device, token_layout)
    teacher = FrozenTeacher(IVLPCLIP(teacher_clip, classnames, IVLPDesign(4, 4, 9, 9))).to(device)
    precision.cast_frozen(teacher)
    student_clip = random_clip("ViT-B/16", device, token_layout)
    student = PromptKDStudent(student_clip, n_ctx=4, depth=9, out_dim=768, project_layers=2)
    for module in student.trainable_modules():
        for p in module.parameters():
            p.requires_grad_(True)
    student.to(device)
    precision.cast_frozen(student)
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.005, momentum=0.9)
    with precision.autocast():
        class_vectors = teacher.class_vectors()
    return precision, teacher, student, optimizer, class_vectors


def train_step(precision, teacher, student, optimizer, class_vectors, images, recompute_text: bool) -> None:
    with precision.autocast():
        with torch.no_grad():
            vectors = teacher.class_vectors() if recompute_text else class_vectors
            teacher_logits = teacher.logit_scale * teacher.image_features(images) @ vectors.t()
        student_logits = student.logit_scale.exp().float() * student(images).float() @ vectors.t()
        loss = kd_loss(student_logits, teacher_logits.float(), 1.0, 1000.0)["loss"]
    optimizer.zero_grad(set_to_none=True)
    precision.backward(loss)
    precision.step([optimizer])


@torch.no_grad()
def eval_batch(precision, teacher, student, class_vectors, images, original: bool) -> torch.Tensor:
    with precision.autocast():
        if original:  # upstream test(): teacher text + image forward for every batch, then the student
            vectors = teacher.class_vectors()
            teacher.image_features(images)
        else:
            vectors = class_vectors
        return student.logit_scale.exp() * student(images).float() @ vectors.t()


def measure(n: int, prec: str, device: torch.device, repeats: int, n_images: int) -> dict:
    """Step and eval times of ours and of the original cost model for ``n`` classes."""
    parts = build(n, prec, device)
    precision, teacher, student, optimizer, class_vectors = parts
    images = torch.randn(BATCH, 3, 224, 224, device=device)
    ours = timed(lambda: train_step(*parts, images, False), device, repeats)
    original = timed(lambda: train_step(*parts, images, True), device, repeats)
    n_batches = max(1, n_images // TEST_BATCH)
    eval_images = torch.randn(min(TEST_BATCH, n_images), 3, 224, 224, device=device)
    per_1000 = 1000 / (n_batches * eval_images.shape[0])

    def evaluate(original_model: bool) -> None:
        for _ in range(n_batches):
            eval_batch(precision, teacher, student, class_vectors, eval_images, original_model)

    eval_ours = timed(lambda: evaluate(False), device, 1) * per_1000
    eval_original = timed(lambda: evaluate(True), device, 1) * per_1000
    return {
        "prec": prec,
        "classes": n,
        "step_ours_s": ours,
        "step_original_s": original,
        "step_speedup": original / ours,
        "eval_1000_ours_s": eval_ours,
        "eval_1000_original_s": eval_original,
        "eval_speedup": eval_original / eval_ours,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--prec", nargs="+", default=["fp32", "bf16"], choices=["fp32", "fp16", "bf16", "amp"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-images", type=int, default=1000, help="images to evaluate (figures are per 1,000)")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"Device: {device_description(device)}; batch {BATCH}; eval batch {TEST_BATCH}; 224 px")

    rows, records = [], []
    for prec in args.prec:
        for n in args.classes:
            record = measure(n, prec, device, args.repeats, args.eval_images)
            records.append(record)
            rows.append([prec, n, *(record[k] for k in list(record)[2:])])
            print(rows[-1], flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()

    headers = ["prec", "classes", "step ours (s)", "step original (s)", "x", "eval 1k ours (s)", "eval 1k orig. (s)", "x"]
    print("\n" + tabulate(rows, headers=headers, floatfmt=".3f"))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_description(device), "results": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
