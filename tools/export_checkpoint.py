"""Write our PromptSRC teacher or PromptKD student in the original implementation's checkpoint layout (the inverse
of ``tools/import_checkpoint.py``), so a model trained here can be evaluated with the original code.

    python tools/export_checkpoint.py RUN_OR_CHECKPOINT --format upstream --out model-best.pth.tar [--backbone FILE]

The original code saves the whole model (Dassl dict ``{state_dict, epoch, optimizer, scheduler, val_result}``) and
our checkpoints hold only the trained tensors, so the frozen CLIP weights are taken from the backbone file the run
was trained on (``--backbone`` if it moved):

* teacher (PromptSRC ``CustomCLIP``): ``prompt_learner.{ctx,token_prefix,token_suffix}``,
  ``prompt_learner.ZS_image_encoder.*`` (the frozen visual copy), ``image_encoder.*`` with ``image_encoder.VPT`` and
  ``...resblocks.{i}.VPT_shallow``, ``text_encoder.{transformer.*,positional_embedding,ln_final.*,text_projection}``
  with ``...resblocks.{i}.VPT_shallow``, ``logit_scale``;
* student (PromptKD ``CustomCLIP``): ``image_encoder.*`` with its prompts, the projector as
  ``VPT_image_trans.conv1.{0,1,3}.*`` (1x1 convolutions: Linear weights reshaped to (out, in, 1, 1)), ``logit_scale``.

Optimizer and scheduler are written as None (the original's ``load_model`` reads only ``state_dict`` and ``epoch``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dassl.utils import load_checkpoint  # noqa: E402
from dassl.utils.errors import UserError, run_entry_point  # noqa: E402
from dassl.utils.torchtools import atomic_torch_save  # noqa: E402

FORMATS = ("upstream",)


class ExportCheckpointError(UserError, ValueError):
    """A checkpoint that cannot be written in the original layout (unknown trainer, missing backbone)."""


def _checkpoint_file(source: str) -> Path:
    """The file itself, or the run folder's best/last checkpoint (teacher: PromptSRC's folder name too)."""
    from trainers.student_record import find_checkpoint

    return find_checkpoint(source)


def _config(meta: dict):
    from yacs.config import CfgNode

    from dassl.config import get_cfg_default
    from trainers.config import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    cfg.merge_from_other_cfg(CfgNode.load_cfg(meta["config"]))
    return cfg


def _clip_state(file: str | Path) -> dict[str, torch.Tensor]:
    from trainers.backbone import read_clip_state_dict

    return {k: v for k, v in read_clip_state_dict(file).items() if k not in ("input_resolution", "context_length",
                                                                             "vocab_size")}  # fmt: skip


def teacher_to_upstream(checkpoint: dict, backbone: str = "") -> dict[str, torch.Tensor]:
    """Our PromptSRC checkpoint -> the original ``CustomCLIP`` state dict (frozen weights from the CLIP file)."""
    from trainers.backbone import build_clip_from_state_dict, resolve_clip_checkpoint
    from trainers.prompt_models import IVLPCLIP, IVLPDesign
    from trainers.teacher import teacher_design

    meta = checkpoint.get("meta") or {}
    cfg = _config(meta)
    file = resolve_clip_checkpoint(cfg.MODEL.BACKBONE.NAME, backbone or cfg.MODEL.BACKBONE.PATH,
                                   path_key="--backbone")  # fmt: skip
    clip_state = _clip_state(file)
    state = {k: v for k, v in checkpoint["state_dict"].items()}
    design = teacher_design(state, source="the teacher checkpoint")
    ivlp = IVLPDesign(design["n_ctx_text"], design["n_ctx_vision"], design["depth_text"], design["depth_vision"],
                      cfg.TRAINER.PROMPTSRC.CTX_INIT)  # fmt: skip
    model = IVLPCLIP(build_clip_from_state_dict(clip_state), list(meta["classnames"]), ivlp)
    out: dict[str, torch.Tensor] = {"logit_scale": clip_state["logit_scale"]}
    out["prompt_learner.ctx"] = state["prompt_learner.ctx"]
    out["prompt_learner.token_prefix"] = model.prompt_learner.token_prefix.to(clip_state["token_embedding.weight"].dtype)
    out["prompt_learner.token_suffix"] = model.prompt_learner.token_suffix.to(clip_state["token_embedding.weight"].dtype)
    visual = {k.removeprefix("visual."): v for k, v in clip_state.items() if k.startswith("visual.")}
    out.update({f"prompt_learner.ZS_image_encoder.{k}": v for k, v in visual.items()})
    out.update({f"image_encoder.{k}": v for k, v in visual.items()})
    for k, v in clip_state.items():
        if k.startswith(("transformer.", "ln_final.")) or k in ("positional_embedding", "text_projection"):
            out[f"text_encoder.{k}"] = v
    for upstream, ours in model.upstream_key_map().items():
        out[upstream] = state[ours]
    return out


def student_to_upstream(checkpoint: dict, backbone: str = "") -> dict[str, torch.Tensor]:
    """Our PromptKD checkpoint -> the original student ``CustomCLIP`` state dict."""
    from trainers.student_record import RECORD_KEY, StudentCheckpointError, student_backbone_file

    record = checkpoint.get(RECORD_KEY)
    if not isinstance(record, dict):
        raise StudentCheckpointError("the student checkpoint has no student record (written before the "
                                     "self-contained format): re-run its training to export it")  # fmt: skip
    record = dict(record, checkpoint=record.get("checkpoint", "the student checkpoint"))
    if backbone:
        record["backbone"] = dict(record["backbone"], file=backbone)
    clip_state = _clip_state(student_backbone_file(record))
    out: dict[str, torch.Tensor] = {"logit_scale": clip_state["logit_scale"]}
    out.update({f"image_encoder.{k.removeprefix('visual.')}": v for k, v in clip_state.items() if k.startswith("visual.")})
    for key, value in checkpoint["state_dict"].items():
        if key.startswith("vision_prompts.prompts.layer"):
            i = int(key.removeprefix("vision_prompts.prompts.layer"))
            out["image_encoder.VPT" if i == 0 else f"image_encoder.transformer.resblocks.{i}.VPT_shallow"] = value
        elif key.startswith("projector."):
            name = key.removeprefix("projector.")
            is_linear_weight = value.dim() == 2  # Linear (out, in) -> Conv2d 1x1 (out, in, 1, 1)
            out[f"VPT_image_trans.conv1.{name}"] = value.reshape(*value.shape, 1, 1) if is_linear_weight else value
    return out


def export_upstream(source: str, out: str, backbone: str = "") -> str:
    """Write ``source`` (a PromptSRC or PromptKD checkpoint of ours, or its run folder) to ``out`` in the original
    layout; returns the trainer name."""
    file = _checkpoint_file(source)
    checkpoint = load_checkpoint(str(file), map_location="cpu")
    trainer = (checkpoint.get("meta") or {}).get("trainer")
    if trainer in ("PromptSRC", "IVLP"):
        state = teacher_to_upstream(checkpoint, backbone)
    elif trainer == "PromptKD":
        state = student_to_upstream(checkpoint, backbone)
    else:
        raise ExportCheckpointError(
            f"{file} is a {trainer or 'checkpoint of unknown origin'}: --format upstream writes our PromptSRC "
            "teachers and PromptKD students (tools/import_checkpoint.py reads original teachers back)"
        )
    upstream = {"state_dict": state, "epoch": checkpoint.get("epoch", 0), "optimizer": None, "scheduler": None,
                "val_result": checkpoint.get("val_result")}  # fmt: skip
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(upstream, out)
    return trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="our PromptSRC / PromptKD checkpoint file or run folder")
    parser.add_argument("--format", choices=FORMATS, default="upstream", help="the layout to write")
    parser.add_argument("--out", required=True, help="the file to write (e.g. .../VLPromptLearner/model-best.pth.tar)")
    parser.add_argument("--backbone", default="", help="the CLIP file the model was trained on, if it moved")
    args = parser.parse_args(argv)

    def body() -> None:
        trainer = export_upstream(args.source, args.out, args.backbone)
        print(f"Wrote the {trainer} checkpoint in the original layout to {args.out}")

    return run_entry_point(body)


if __name__ == "__main__":
    sys.exit(main())
