"""Peak memory of one PromptSRC teacher training step (ViT-L/14 shape, random weights), with and without
chunked text encoding.

    python benchmarks/teacher_memory.py [--device cuda] [--classes 100 1000] [--chunk 0 100] [--batch 8]

Each configuration runs in its own subprocess so its peak is its own: on a GPU the figure is
``torch.cuda.max_memory_allocated``; on the CPU it is the process's peak resident set size. ``--upstream`` adds
upstream's second frozen copy of the visual tower (``ZS_image_encoder``) to show what sharing the backbone saves.
On a GPU the step runs with PREC fp16 (frozen fp16 weights, autocast), as the teacher config does.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from benchmarks.common import device_description, random_clip  # noqa: E402
from trainers.precision import Precision  # noqa: E402
from trainers.prompt_models import IVLPDesign  # noqa: E402
from trainers.prompting import freeze_all_but  # noqa: E402
from trainers.promptsrc import PromptSRCCLIP, promptsrc_loss  # noqa: E402


def one_step(device: torch.device, n_classes: int, chunk: int, batch: int, prec: str, upstream: bool) -> dict:
    """Build the teacher, run one forward/backward/SGD step, return the peak memory in GiB."""
    clip_model = random_clip("ViT-L/14", device)
    classnames = [f"class number {i}" for i in range(n_classes)]
    model = PromptSRCCLIP(clip_model, classnames, IVLPDesign(4, 4, 9, 9), text_chunk=chunk).to(device)
    freeze_all_but(model, model.trainable_modules())
    # the frozen template-averaged text features: their value does not change the memory of a step
    model.register_buffer("fixed_embeddings", torch.randn(n_classes, 768, device=device), persistent=False)
    precision = Precision(prec, device)
    precision.cast_frozen(model)
    extra = copy.deepcopy(clip_model.visual) if upstream else None  # noqa: F841 (held, as upstream holds it)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.005, momentum=0.9)
    images = torch.randn(batch, 3, 224, 224, device=device)
    labels = torch.randint(0, n_classes, (batch,), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    with precision.autocast():
        terms = promptsrc_loss(model.forward_train(images), labels, 25, 10)
    optimizer.zero_grad()
    precision.backward(terms["loss"])
    precision.step([optimizer])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"peak_gib": peak, "loss": float(terms["loss"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--chunk", type=int, nargs="+", default=[0, 100], help="TEXT_CHUNK values (0 = no chunking)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prec", default="", help="default: fp16 on a GPU, fp32 on the CPU")
    parser.add_argument("--upstream", action="store_true", help="also run with upstream's second visual tower")
    parser.add_argument("--json", default="")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: run one configuration
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    prec = args.prec or ("fp16" if device.type == "cuda" else "fp32")

    if args.one:
        n, chunk, upstream = (int(v) for v in args.one.split(","))
        print(json.dumps(one_step(device, n, chunk, args.batch, prec, bool(upstream))))
        return 0

    print(f"Device: {device_description(device)}; ViT-L/14 PromptSRC teacher, batch {args.batch}, PREC {prec}")
    rows, records = [], []
    variants = [(n, c, 0) for n in args.classes for c in args.chunk]
    if args.upstream:
        variants += [(n, 0, 1) for n in args.classes]
    for n, chunk, upstream in variants:
        cmd = [sys.executable, __file__, "--device", args.device, "--batch", str(args.batch), "--prec", prec,
               "--one", f"{n},{chunk},{upstream}"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            peak = f"{result['peak_gib']:.2f}"
        else:
            tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            result, peak = {"error": tail}, "OOM" if "out of memory" in tail.lower() else f"failed: {tail[:60]}"
        label = "upstream (2nd visual copy, no chunks)" if upstream else ("chunked" if chunk else "not chunked")
        records.append({"classes": n, "chunk": chunk, "upstream_copy": bool(upstream), **result})
        rows.append([n, label, chunk or "-", peak])
        print(rows[-1], flush=True)
    print("\n" + tabulate(rows, headers=["classes", "text encoding", "chunk", "peak GiB"]))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_description(device), "prec": prec, "results": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
