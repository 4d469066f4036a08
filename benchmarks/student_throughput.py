"""The deployment payoff of distillation: inference throughput and size of the PromptKD student vs its teacher.

    OMP_NUM_THREADS=2 python benchmarks/student_throughput.py [--device cpu|cuda] [--batch 1 32] [--classes 1000]
                                                              [--repeats 3]

Both at their full shapes with random weights (benchmarks/common.py): the student is the exported classifier
(``trainers/student_model.py``: ViT-B/16 image tower with 4 ctx x depth 9 visual prompts, 2-layer projector,
class vectors); the teacher is PromptSRC's inference with its class vectors computed once (ViT-L/14 image tower
with 4 ctx x depth 9 visual prompts, then the same matrix product). Images per second = batch / median time of
one forward. Parameters: what runs at inference (image side + classifier); the teacher's text tower, which it
also needs to encode new classes, is counted separately.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tabulate import tabulate  # noqa: E402

from benchmarks.common import device_description, random_clip, timed  # noqa: E402
from trainers.student_model import StudentClassifier  # noqa: E402


def build_models(classes: int, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module, int]:
    """(student, teacher, the teacher's text-tower parameter count), fp32, eval, on ``device``."""
    generator = torch.Generator().manual_seed(0)
    class_vectors = F.normalize(torch.randn(classes, 768, generator=generator), dim=-1)
    names = [f"class {i}" for i in range(classes)]
    student_clip = random_clip("ViT-B/16", device)
    student = StudentClassifier(student_clip.visual, 4, 9, 2, class_vectors, student_clip.logit_scale, names)
    teacher_clip = random_clip("ViT-L/14", device)
    text_params = sum(p.numel() for name, p in teacher_clip.named_parameters() if not name.startswith("visual."))
    # the teacher at inference: its prompted image tower against the cached class vectors (no projector)
    teacher = StudentClassifier(teacher_clip.visual, 4, 9, 1, class_vectors, teacher_clip.logit_scale, names)
    teacher.projector = torch.nn.Identity()
    return student.to(device).eval(), teacher.to(device).eval(), text_params


def count(model: torch.nn.Module) -> int:
    return sum(t.numel() for t in model.state_dict().values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    student, teacher, text_params = build_models(args.classes, device)

    rows = []
    speeds: dict[int, tuple[float, float]] = {}
    for batch in args.batch:
        image = torch.randn(batch, 3, 224, 224, device=device)
        with torch.no_grad():
            student_time = timed(lambda image=image: student(image), device, args.repeats)
            teacher_time = timed(lambda image=image: teacher(image), device, args.repeats)
        speeds[batch] = (batch / student_time, batch / teacher_time)
        rows.append([f"images/s at batch {batch}", f"{batch / student_time:.2f}", f"{batch / teacher_time:.2f}",
                     f"{teacher_time / student_time:.1f}x"])  # fmt: skip
    s_params, t_params = count(student), count(teacher)
    rows.append(["parameters at inference", f"{s_params / 1e6:.1f} M", f"{t_params / 1e6:.1f} M",
                 f"{t_params / s_params:.1f}x"])  # fmt: skip
    rows.append(["+ text tower (new classes)", "-", f"{(t_params + text_params) / 1e6:.1f} M",
                 f"{(t_params + text_params) / s_params:.1f}x"])  # fmt: skip
    print(f"PromptKD student (ViT-B/16) vs teacher (ViT-L/14), {args.classes} classes, 224 px, fp32, "
          f"{device_description(device)}, median of {args.repeats}")  # fmt: skip
    print(tabulate(rows, headers=["", "student", "teacher", "ratio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
