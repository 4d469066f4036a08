"""Import an original PromptSRC / PromptKD-teacher checkpoint (full Dassl pickle, backbone included) into our
format: the trainable prompt tensors under our names + metadata, loadable with ``torch.load(weights_only=True)``.

    python tools/import_checkpoint.py teacher_model/ImageNet/VLPromptLearner/model-best.pth.tar \
        --out teacher_model/ImageNet/VLPromptLearner/model.pth.tar-20 [--backbone ViT-L/14]

The original file is read with the restricted unpickler (nothing is imported or executed). The prompt design
(context length, depths) is read from the keys; a missing deep-prompt tensor is an error that names it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dassl.utils.torchtools import atomic_torch_save  # noqa: E402
from trainers.teacher import TeacherCheckpointError, read_teacher_state, teacher_design  # noqa: E402


def upstream_to_ours(state: dict[str, torch.Tensor], design: dict[str, int]) -> dict[str, torch.Tensor]:
    """Rename upstream IVLP/PromptSRC prompt tensors to ours (``trainers.prompt_models.IVLPCLIP`` names)."""
    if not design["upstream_names"]:
        return dict(state)
    out = {"prompt_learner.ctx": state["prompt_learner.ctx"]}
    for i in range(design["depth_vision"]):
        key = "image_encoder.VPT" if i == 0 else f"image_encoder.transformer.resblocks.{i}.VPT_shallow"
        out[f"vision_prompts.prompts.layer{i}"] = state[key]
    for i in range(1, design["depth_text"]):
        out[f"text_prompts.prompts.layer{i}"] = state[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"]
    return out


def import_teacher(path: str, out: str, backbone: str = "ViT-L/14", epoch: int = 20) -> dict:
    """Convert ``path`` and write ``out``; returns the design read from the checkpoint."""
    state = read_teacher_state(path)
    design = teacher_design(state, source=path)
    checkpoint = {
        "state_dict": upstream_to_ours(state, design),
        "epoch": epoch,
        "optimizer": None,
        "scheduler": None,
        "val_result": None,
        "meta": {"trainer": "PromptSRC", "backbone": backbone, "imported_from": str(path), "design": design},
    }
    atomic_torch_save(checkpoint, out)
    return design


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="original PromptSRC checkpoint (file or run folder)")
    parser.add_argument("--out", required=True, help="where to write our checkpoint")
    parser.add_argument("--backbone", default="ViT-L/14", help="backbone the teacher was trained on")
    args = parser.parse_args(argv)
    try:
        design = import_teacher(args.checkpoint, args.out, args.backbone)
    except TeacherCheckpointError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {args.out}: {design}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
