"""What a saved PromptKD student carries so that it works on its own (issue 13).

A PromptKD checkpoint holds, next to its trainable tensors, a ``"student"`` record: the class vectors it was
distilled against (the classifier), the class names, the backbone it was built on (name, architecture and the
weights' SHA256), its prompt design, the logit scale, the test-time preprocessing and where its teacher came from.
So ``--eval-only``, ``tools/predict.py`` and ``tools/export_student.py`` need neither the teacher checkpoint nor the
class-vector cache; only re-targeting the student to other class names needs the teacher again.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from dassl.utils import load_checkpoint
from dassl.utils.errors import UserError

from .backbone import (
    ClipCheckpointError,
    build_clip_from_file,
    clip_file_sha256,
    resolve_clip_checkpoint,
    set_token_layout,
    vision_tower_config,
)
from .student_model import StudentClassifier

RECORD_KEY = "student"
RECORD_FORMAT = 1
MODEL_FOLDER = "VLPromptLearner"  # PromptKD's registered model name = its checkpoint folder


class StudentCheckpointError(UserError, ValueError):
    """A saved student that is missing, not a PromptKD checkpoint, or older than the self-contained format."""


def _run_trainer(folder: Path) -> str | None:
    """The trainer named by a run folder's ``results.json`` (None when there is none to read)."""
    try:
        trainer = json.loads((folder / "results.json").read_text()).get("trainer")
    except (OSError, ValueError, AttributeError):
        return None
    return trainer if isinstance(trainer, str) else None


def find_checkpoint(path: str | os.PathLike, epoch: int | None = None, model_folder: str = MODEL_FOLDER) -> Path:
    """The checkpoint file of a run folder (``<run>/<model_folder>/model-best.pth.tar``, else the highest
    ``model.pth.tar-N``; ``epoch`` picks ``model.pth.tar-<epoch>``), of a checkpoint folder, or ``path`` itself."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    for folder in (path / model_folder, path):
        if not folder.is_dir():
            continue
        if epoch is not None:
            wanted = folder / f"model.pth.tar-{epoch}"
            if wanted.is_file():
                return wanted
            continue
        if (folder / "model-best.pth.tar").is_file():
            return folder / "model-best.pth.tar"
        numbered = sorted(
            (int(m.group(1)), p) for p in folder.iterdir() if (m := re.fullmatch(r"model\.pth\.tar-(\d+)", p.name))
        )
        if numbered:
            return numbered[-1][1]
    which = f"model.pth.tar-{epoch}" if epoch is not None else "model-best.pth.tar or model.pth.tar-N"
    trainer = _run_trainer(path)
    if trainer is not None and trainer != "PromptKD":
        raise StudentCheckpointError(
            f"{path} is a {trainer} run, not a PromptKD student's: only a PromptKD run folder (or checkpoint) carries a "
            f"student ({model_folder}/{which}). Point at the output folder of a PromptKD training run."
        )
    raise StudentCheckpointError(
        f"No checkpoint found at {path}: expected a checkpoint file, or a run folder with {model_folder}/{which} "
        "(what train.py writes under --output-dir). Point at the run folder of a finished training run."
    )


def read_student_record(path: str | os.PathLike, epoch: int | None = None) -> tuple[dict[str, Any], dict]:
    """(student record, whole checkpoint) of a saved PromptKD student (file or run folder)."""
    file = find_checkpoint(path, epoch)
    checkpoint = load_checkpoint(str(file), map_location="cpu")
    record = checkpoint.get(RECORD_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(record, dict):
        trainer = (checkpoint.get("meta") or {}).get("trainer") if isinstance(checkpoint, dict) else None
        what = f"a {trainer} checkpoint" if trainer and trainer != "PromptKD" else "a checkpoint without a student record"
        raise StudentCheckpointError(
            f"{file} is {what}: it does not carry the student's class vectors and design (PromptKD checkpoints "
            "written since the self-contained format do). Re-run the PromptKD training (or its last epoch with "
            "--resume) to write one, or evaluate it with the teacher (TRAINER.PROMPTKD.TEACHER_CKPT)."
        )
    if record.get("format", 0) > RECORD_FORMAT:
        raise StudentCheckpointError(
            f"{file} has student record format {record['format']}; this toolkit reads up to {RECORD_FORMAT}. "
            "Update the toolkit."
        )
    record = dict(record, checkpoint=str(file))
    return record, checkpoint


def class_vectors_for(path: str | os.PathLike, classnames: list[str]) -> dict[str, Any] | None:
    """The saved student's record if its class names are ``classnames`` (then its class vectors are the ones to
    use), else None with a note: another dataset's classes (cross-dataset evaluation) need the teacher's text side."""
    try:
        record, _ = read_student_record(path)
    except StudentCheckpointError as err:
        print(f"Class vectors: not taken from {path} ({err})")
        return None
    if list(record["classnames"]) != list(classnames):
        print(
            f"Class vectors: the saved student {record['checkpoint']} was distilled on {len(record['classnames'])} "
            f"other classes; this dataset's {len(classnames)} classes are encoded by the teacher"
        )
        return None
    print(f"Class vectors: from the saved student {record['checkpoint']} ({len(classnames)} classes; no teacher needed)")
    return record


__all__ = [
    "RECORD_KEY",
    "RECORD_FORMAT",
    "StudentCheckpointError",
    "find_checkpoint",
    "read_student_record",
    "class_vectors_for",
    "student_backbone_file",
    "student_from_checkpoint",
]


# ------------------------------------------------------------------------------------------------------------
# the saved student as a stand-alone classifier (trainers/student_model.py)


def student_backbone_file(record: dict[str, Any]) -> Path:
    """The CLIP file the student was built on: the recorded path, else its name in the CLIP cache dir; its SHA256
    must be the recorded one (another file would silently give other predictions)."""
    backbone = record["backbone"]
    file = Path(backbone["file"]).expanduser()
    if not file.is_file():
        try:
            file = resolve_clip_checkpoint(backbone["name"])
        except (ClipCheckpointError, ValueError) as err:
            raise StudentCheckpointError(
                f"The student {record['checkpoint']} was built on the CLIP file {backbone['file']} ({backbone['name']}, "
                f"SHA256 {backbone['sha256']}), which is not there, and none was found by name: {err}"
            ) from err
    actual = clip_file_sha256(file)
    if actual != backbone["sha256"]:
        raise StudentCheckpointError(
            f"{file} is not the CLIP file the student {record['checkpoint']} was built on: SHA256 {actual}, recorded "
            f"{backbone['sha256']}. Put that file back at {backbone['file']} (or into the CLIP cache dir)."
        )
    return file


def student_from_checkpoint(path: str | os.PathLike, epoch: int | None = None) -> StudentClassifier:
    """The saved student (run folder or checkpoint file) as a ``StudentClassifier`` (fp32, eval, CPU)."""
    record, checkpoint = read_student_record(path, epoch)
    clip_model = build_clip_from_file(student_backbone_file(record))
    design = record["design"]
    set_token_layout(clip_model, design.get("token_layout", "batch_first"))  # older records: open_clip's layout
    model = StudentClassifier(
        clip_model.visual, design["n_ctx"], design["depth"], design["project_layers"], record["class_vectors"],
        record["logit_scale"], record["classnames"], record["preprocess"],
    )  # fmt: skip
    state = {_student_key(k): v for k, v in checkpoint["state_dict"].items()}
    missing = sorted(k for k in model.state_dict() if k.startswith(("prompts.", "projector.")) and k not in state)
    if missing:
        raise StudentCheckpointError(f"{record['checkpoint']} lacks the student tensors {missing}")
    model.load_state_dict(state, strict=False)
    model.vision_config = vision_tower_config(clip_model)
    return model


def _student_key(key: str) -> str:
    """Trainer names (``vision_prompts.prompts.layer0``) -> stand-alone names (``prompts.layer0``)."""
    return key.removeprefix("vision_prompts.")
