"""Export a distilled PromptKD student in the Hugging Face layout, loadable with torch + open_clip alone.

    python tools/export_student.py RUN_DIR --out exported/caltech_student [--epoch N] [--onnx]

writes into ``--out``:

* ``config.json``: class names, preprocessing (resolution, mean/std, interpolation), the prompt design, the image
  tower's open_clip config, the backbone's name and SHA256, the teacher, the accuracies of the run;
* ``model.safetensors``: the whole student (frozen image tower, prompts, projector, class vectors, logit scale);
* ``promptkd_student.py``: the loader (``from_pretrained(folder)``), a copy of ``trainers/student_model.py``,
  which imports nothing from this toolkit;
* ``README.md``: a model card with the accuracies from the run's ``results.json``;
* with ``--onnx``: ``model.onnx``, the whole classifier (image -> logits), checked against PyTorch under
  onnxruntime (max |logit difference| at most ``ONNX_ATOL``) before it is kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dassl.utils import atomic_write_text  # noqa: E402
from dassl.utils.errors import UserError, run_entry_point  # noqa: E402

LOADER_NAME = "promptkd_student.py"
ONNX_NAME = "model.onnx"
ONNX_ATOL = 1e-3  # logits are ~100 * cosine: 1e-3 is far below any change of the predicted class
ONNX_OPSET = 18


class ExportError(UserError, RuntimeError):
    """The export could not be written or does not reproduce the PyTorch model."""


def read_accuracies(results: dict) -> dict[str, float]:
    """The headline numbers of a ``results.json``: ``base``/``novel``/``hm`` (base-to-novel) or ``accuracy``
    (cross-dataset), else ``final``; each an object with an "accuracy" float (or, for ``hm``, a bare float)."""
    found: dict[str, float] = {}
    for key in ("base", "novel", "hm", "accuracy", "final"):
        value = results.get(key)
        if isinstance(value, dict) and isinstance(value.get("accuracy"), (int, float)):
            found[key] = float(value["accuracy"])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[key] = float(value)
    if "final" in found and len(found) > 1:
        del found["final"]  # the same number as novel / accuracy
    return found


def _run_results(checkpoint: str) -> dict[str, float]:
    """Accuracies of the run the checkpoint belongs to (``<run>/results.json``), or {} if there is none."""
    path = Path(checkpoint).resolve().parent.parent / "results.json"
    try:
        return read_accuracies(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def model_card(config: dict) -> str:
    """README.md of the export: what the model is, its numbers, how to load it."""
    names = config["classnames"]
    accuracies = config.get("accuracies") or {}
    labels = {"base": "base classes", "novel": "novel classes", "hm": "harmonic mean", "accuracy": "accuracy",
              "final": "accuracy"}  # fmt: skip
    rows = "\n".join(f"| {labels[k]} | {v:.2f} |" for k, v in accuracies.items()) or "| (no results.json) | |"
    design, backbone, pre = config["design"], config["backbone"], config["preprocess"]
    return f"""---
library_name: open_clip
tags: [image-classification, clip, prompt-distillation, promptkd]
---
# PromptKD student: {config.get('dataset', 'unknown dataset')}, {len(names)} classes

A CLIP image encoder ({backbone['name']}, SHA256 `{backbone['sha256'][:16]}...`) with deep visual prompts
({design['n_ctx']} tokens, depth {design['depth']}) and a {design['project_layers']}-layer projector, distilled
without labels from a {config['teacher'].get('name', '?')} teacher ({config['teacher'].get('kind', '?')}); it
classifies with the teacher's class vectors, so it needs no text encoder.

## Accuracy (%), from the training run's results.json ({config.get('modal', '?')} protocol)
| | |
|---|---|
{rows}

## Use
```python
import sys; sys.path.insert(0, "THIS_FOLDER")
from promptkd_student import from_pretrained
from PIL import Image
model = from_pretrained("THIS_FOLDER")
logits = model(model.preprocess(Image.open("photo.jpg").convert("RGB"))[None])  # (1, {len(names)})
print(model.classnames[logits.argmax().item()])
```
Needs torch, open_clip and safetensors. Preprocessing: resize to {max(pre['resolution'])} ({pre['interpolation']}),
centre crop {pre['resolution'][0]}x{pre['resolution'][1]}, normalise with mean {pre['mean']}, std {pre['std']}.
{'`model.onnx`: the same classifier (input `image` (batch, 3, H, W), output `logits`).' if config.get('onnx') else ''}

Classes: {', '.join(names[:20])}{', ...' if len(names) > 20 else ''}
"""


def export_onnx(model: torch.nn.Module, path: Path, resolution: list[int]) -> float:
    """Write the classifier as ONNX (dynamic batch) and return the max |logit difference| to PyTorch under
    onnxruntime on a random batch of 3; above ``ONNX_ATOL`` the file is removed and it is an error."""
    import numpy as np
    import onnxruntime

    example = torch.randn(2, 3, *resolution)
    tmp = path.with_name(f".{path.name}.tmp")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX form; the plain one has
    try:
        with warnings.catch_warnings():
            # the TorchScript-based exporter handles the prompt hooks and dynamic batch; torch calls it legacy
            warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shape checks, constant per model
            torch.onnx.export(
                model, (example,), str(tmp), input_names=["image"], output_names=["logits"],
                opset_version=ONNX_OPSET, dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
            )  # fmt: skip
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    check = torch.randn(3, 3, *resolution, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(check).numpy()
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": check.numpy()})[0]
    error = float(np.abs(got - expected).max())
    if not error <= ONNX_ATOL:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"The ONNX export differs from PyTorch by {error:.3g} (> {ONNX_ATOL}) in the logits")
    tmp.replace(path)
    return error


def export_student(source: str, out: str | Path, epoch: int | None = None, onnx: bool = False) -> dict:
    """Write the export of the student at ``source`` (run folder or checkpoint) into ``out``; returns config."""
    from trainers.student_model import save_pretrained
    from trainers.student_record import read_student_record, student_from_checkpoint

    record, _ = read_student_record(source, epoch)
    model = student_from_checkpoint(source, epoch)
    out = Path(out)
    config = {
        "vision": model.vision_config,
        "backbone": {"name": record["backbone"]["name"], "sha256": record["backbone"]["sha256"],
                     "architecture": record["backbone"]["architecture"]},
        "teacher": {k: record["teacher"].get(k) for k in ("kind", "name", "ctx_init")},
        "dataset": record.get("dataset"), "modal": record.get("modal"), "n_base": record.get("n_base"),
        "source_checkpoint": record["checkpoint"], "accuracies": _run_results(record["checkpoint"]),
        "onnx": ONNX_NAME if onnx else None,
    }  # fmt: skip
    save_pretrained(model, out, config)
    import trainers.student_model as loader

    shutil.copyfile(loader.__file__, out / LOADER_NAME)  # the loader travels with the weights
    full = json.loads((out / "config.json").read_text())
    if onnx:
        full["onnx_max_abs_error"] = export_onnx(model, out / ONNX_NAME, record["preprocess"]["resolution"])
        atomic_write_text(str(out / "config.json"), json.dumps(full, indent=2) + "\n")
    atomic_write_text(str(out / "README.md"), model_card(full))
    return full


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a PromptKD run folder or student checkpoint")
    parser.add_argument("--out", required=True, help="the export folder (created)")
    parser.add_argument("--epoch", type=int, default=None, help="export model.pth.tar-EPOCH instead of the best")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx (image -> logits)")
    args = parser.parse_args(argv)

    def body() -> None:
        config = export_student(args.source, args.out, args.epoch, args.onnx)
        extra = f"; ONNX max |logit error| {config['onnx_max_abs_error']:.2g}" if args.onnx else ""
        print(f"Exported the student ({len(config['classnames'])} classes) to {args.out}{extra}")

    return run_entry_point(body)


if __name__ == "__main__":
    sys.exit(main())
