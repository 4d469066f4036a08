"""Classify images with a trained model: a PromptKD student (run folder, checkpoint, or exported folder) or the run
folder of any other trained method.

    python tools/predict.py RUN_DIR photo.jpg more_photos/ "shots/*.png" [--topk 5] [--format table|json|csv]
                            [--batch-size 32] [--device cpu|cuda] [--precision fp32|fp16|bf16]
                            [--classnames names.txt [--teacher-ckpt FILE] [--teacher-backbone FILE]]

A saved student carries its class vectors, so neither the teacher nor the dataset is needed. ``--classnames``
(one class name per line) re-targets a student to other classes: their names are encoded once by the student's
teacher (its text side), which then must be available (recorded in the checkpoint; ``--teacher-ckpt`` and
``--teacher-backbone`` override where it is). Other methods are rebuilt from the config and class names their
checkpoint records, with the CLIP file they were trained with.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dassl.utils.errors import UserError, run_entry_point  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FORMATS = ("table", "json", "csv")
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class PredictError(UserError, ValueError):
    """Bad inputs for prediction (no images, unreadable class-name file, a teacher needed but missing)."""


@dataclass
class Predictor:
    """What prediction needs of a model: its classes, its test transform and images -> logits."""

    classnames: list[str]
    transform: Callable
    logits: Callable[[torch.Tensor], torch.Tensor]  # (batch, 3, H, W) -> (batch, n_cls)
    source: str


# ------------------------------------------------------------------------------------------------------------
# inputs


def collect_images(inputs: Sequence[str]) -> list[Path]:
    """Image files from files, folders (searched recursively) and glob patterns, in the given order, sorted within
    a folder or pattern; each file once."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            files = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                raise PredictError(f"No image matches {item!r} (not a file, a folder or a glob with images). "
                                   f"Image suffixes: {', '.join(IMAGE_SUFFIXES)}")  # fmt: skip
            found += files
    unique = list(dict.fromkeys(found))
    if not unique:
        raise PredictError(f"No images in {list(inputs)}; give image files, folders or glob patterns")
    return unique


def read_classnames(path: str) -> list[str]:
    """One class name per line (blank lines and ``#`` comments skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise PredictError(f"Cannot read the class-name file {path}: {err}") from err
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise PredictError(f"{path} holds no class names (expected one per line)")
    return names


# ------------------------------------------------------------------------------------------------------------
# models


def load_predictor(path: str, device: torch.device, precision: str = "fp32", epoch: int | None = None,
                   classnames: list[str] | None = None, teacher_ckpt: str = "",
                   teacher_backbone: str = "") -> Predictor:  # fmt: skip
    """A PromptKD student (exported folder, run folder or checkpoint) or any other trained method's run folder."""
    from trainers.student_model import CONFIG_NAME, from_pretrained
    from trainers.student_record import StudentCheckpointError, read_student_record, student_from_checkpoint

    folder = Path(path).expanduser()
    if (folder / CONFIG_NAME).is_file():
        model, source = from_pretrained(folder), f"exported student {folder}"
        record = json.loads((folder / CONFIG_NAME).read_text())
    else:
        try:
            record, _ = read_student_record(folder, epoch)
        except StudentCheckpointError:
            record = None
        if record is None:
            if classnames is not None:
                raise PredictError("--classnames re-targets a PromptKD student; other methods classify the classes "
                                   "they were trained on")  # fmt: skip
            return _trainer_predictor(folder, device, precision, epoch)
        model, source = student_from_checkpoint(folder, epoch), f"PromptKD student {record['checkpoint']}"
    if classnames is not None:
        from trainers.teacher import encode_classnames

        teacher = dict(record["teacher"])
        teacher.update({k: v for k, v in (("checkpoint", teacher_ckpt), ("backbone_path", teacher_backbone)) if v})
        model.with_classes(classnames, encode_classnames(teacher, classnames))
    model = model.to(device).eval()
    dtype = PRECISIONS[precision]

    def logits(images: torch.Tensor) -> torch.Tensor:
        context = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
        with torch.no_grad(), context:
            return model(images.to(device)).float()

    return Predictor(list(model.classnames), model.preprocess, logits, source)


def _trainer_predictor(folder: Path, device: torch.device, precision: str, epoch: int | None) -> Predictor:
    """Any other method: its trainer's own model, rebuilt from the config and class names its checkpoint records
    (the dataset is not needed), with its own inference (``model_inference``) and test transform."""
    from types import SimpleNamespace

    from yacs.config import CfgNode

    import trainers  # noqa: F401  (registers the trainers)
    from dassl.config import get_cfg_default
    from dassl.data.transforms import build_transform
    from dassl.engine import TRAINER_REGISTRY
    from dassl.engine.trainer import TrainerBase
    from dassl.utils import load_checkpoint
    from trainers.config import extend_cfg
    from trainers.student_record import find_checkpoint

    checkpoint_file = None
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        try:
            checkpoint_file = find_checkpoint(sub, epoch, model_folder="")
            break
        except UserError:
            continue
    if checkpoint_file is None and folder.is_file():
        checkpoint_file = folder
    if checkpoint_file is None:
        raise PredictError(f"{folder} is not a trained run folder: no <model>/model-best.pth.tar or model.pth.tar-N "
                           "under it (ZeroshotCLIP has nothing to load; run it with train.py --eval-only)")  # fmt: skip
    meta = load_checkpoint(str(checkpoint_file), map_location="cpu").get("meta") or {}
    if not meta.get("config") or not meta.get("classnames"):
        raise PredictError(f"{checkpoint_file} records no config and class names (an upstream checkpoint?); "
                           "evaluate it with train.py --eval-only --model-dir instead")  # fmt: skip
    cfg = extend_cfg(get_cfg_default())
    cfg.merge_from_other_cfg(CfgNode.load_cfg(meta["config"]))
    cfg.USE_CUDA = device.type == "cuda"
    node = TRAINER_REGISTRY.get(cfg.TRAINER.NAME).CONFIG_NODE
    if precision != "fp32" or device.type == "cpu":
        cfg.TRAINER[node].PREC = precision  # fp16 storage does not run on every CPU op: fp32 unless asked
    cfg.freeze()
    trainer_class = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    trainer = trainer_class.__new__(trainer_class)
    TrainerBase.__init__(trainer)
    trainer.cfg, trainer.device = cfg, device
    trainer.init_method_state(cfg, device)
    trainer.dm = SimpleNamespace(dataset=SimpleNamespace(classnames=list(meta["classnames"])))
    trainer.check_cfg(cfg)
    trainer.build_model()
    model_dir = checkpoint_file.parent.parent
    trainer.load_model(str(model_dir), epoch if epoch is not None else _epoch_of(checkpoint_file))
    trainer.set_model_mode("eval")

    def logits(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return trainer.model_inference(images.to(device)).float()

    return Predictor(list(meta["classnames"]), build_transform(cfg, is_train=False), logits,
                     f"{cfg.TRAINER.NAME} {checkpoint_file}")  # fmt: skip


def _epoch_of(checkpoint_file: Path) -> int | None:
    """``model.pth.tar-N`` -> N; ``model-best.pth.tar`` -> None (what ``load_model`` reads by default)."""
    name = checkpoint_file.name
    return int(name.rsplit("-", 1)[1]) if name.startswith("model.pth.tar-") else None


# ------------------------------------------------------------------------------------------------------------
# prediction and output


def predict(predictor: Predictor, images: list[Path], topk: int = 5, batch_size: int = 32,
            progress: bool | None = None) -> list[dict]:  # fmt: skip
    """[{"image", "predictions": [{"rank", "class", "label", "probability"}, ...]}] in input order."""
    from PIL import Image
    from tqdm import tqdm

    k = min(topk, len(predictor.classnames))
    show = len(images) > batch_size if progress is None else progress
    results: list[dict] = []
    with tqdm(total=len(images), unit="img", disable=not show, file=sys.stderr, desc="predict") as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            batch = []
            for path in chunk:
                try:
                    with Image.open(path) as img:
                        batch.append(predictor.transform(img.convert("RGB")))
                except OSError as err:
                    raise PredictError(f"Cannot read the image {path}: {err}") from err
            probabilities = predictor.logits(torch.stack(batch)).softmax(dim=-1)  # (batch, n_cls)
            top = probabilities.topk(k, dim=-1)
            for path, values, labels in zip(chunk, top.values.tolist(), top.indices.tolist()):
                results.append({"image": str(path), "predictions": [
                    {"rank": r + 1, "class": predictor.classnames[c], "label": c, "probability": p}
                    for r, (p, c) in enumerate(zip(values, labels))]})  # fmt: skip
            bar.update(len(chunk))
    return results


def format_results(results: list[dict], fmt: str) -> str:
    """A table (one row per image: top-k classes with probabilities), JSON, or CSV (one row per image and rank)."""
    if fmt == "json":
        return json.dumps(results, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["image", "rank", "class", "label", "probability"])
        for item in results:
            for p in item["predictions"]:
                writer.writerow([item["image"], p["rank"], p["class"], p["label"], f"{p['probability']:.6f}"])
        return out.getvalue().rstrip("\n")
    from tabulate import tabulate

    k = max(len(item["predictions"]) for item in results)
    headers = ["image", *[f"top-{r + 1}" for r in range(k)]]
    rows = [[item["image"], *[f"{p['class']} ({100 * p['probability']:.1f}%)" for p in item["predictions"]]]
            for item in results]  # fmt: skip
    return tabulate(rows, headers=headers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run folder, a checkpoint file, or an exported student folder")
    parser.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    parser.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32", help="compute precision")
    parser.add_argument("--epoch", type=int, default=None, help="use model.pth.tar-EPOCH instead of the best")
    parser.add_argument("--classnames", default="", help="file with one class name per line: re-target a student")
    parser.add_argument("--teacher-ckpt", default="", help="with --classnames: the teacher checkpoint (if moved)")
    parser.add_argument("--teacher-backbone", default="", help="with --classnames: the teacher's CLIP file")
    parser.add_argument("--output", default="", help="write the output to this file instead of stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> None:
        if args.topk < 1 or args.batch_size < 1:
            raise PredictError("--topk and --batch-size must be at least 1")
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise PredictError("--device cuda, but no CUDA device is available; use --device cpu")
        images = collect_images(args.inputs)
        names = read_classnames(args.classnames) if args.classnames else None
        with redirect_stdout(sys.stderr):  # the loaders' notes must not mix with JSON/CSV on stdout
            predictor = load_predictor(args.model, device, args.precision, args.epoch, names, args.teacher_ckpt,
                                       args.teacher_backbone)  # fmt: skip
            results = predict(predictor, images, args.topk, args.batch_size)
        text = format_results(results, args.format)
        if args.output:
            from dassl.utils import atomic_write_text

            atomic_write_text(args.output, text + "\n")
            print(f"Predictions of {len(images)} images written to {args.output}", file=sys.stderr)
        else:
            print(text)

    return run_entry_point(body)


if __name__ == "__main__":
    sys.exit(main())
