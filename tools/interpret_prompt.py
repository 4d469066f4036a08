"""The vocabulary words nearest to each learned context vector of a CoOp-family prompt (CoOp's interpret_prompt.py).

    python tools/interpret_prompt.py output/.../prompt_learner/model.pth.tar-50 3
    python tools/interpret_prompt.py FILE TOPK --backbone RN50 --backbone-path /path/to/RN50.pt

Distances are Euclidean, to the rows of the frozen CLIP's token embedding, as in CoOp. The backbone is the run's
own (``config.yaml`` next to the checkpoint folder) unless given; class-specific contexts are listed per class.
Our checkpoints and upstream's (read with the restricted unpickler) both work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402

from dassl.utils.errors import UserError  # noqa: E402
from dassl.utils.torchtools import load_checkpoint  # noqa: E402


def nearest_words(ctx: torch.Tensor, token_embedding: torch.Tensor, topk: int) -> list[list[tuple[str, float]]]:
    """For each context vector (rows of ``ctx``, shape (n_ctx, dim)), its ``topk`` nearest tokens and distances."""
    from open_clip.tokenizer import SimpleTokenizer

    decoder = SimpleTokenizer().decoder
    distances = torch.cdist(ctx.float(), token_embedding.float())  # (n_ctx, vocab)
    values, indices = distances.topk(topk, dim=1, largest=False)
    return [
        [(decoder[int(i)].replace("</w>", ""), float(d)) for d, i in zip(row_d, row_i)]
        for row_d, row_i in zip(values, indices)
    ]


def read_context(path: Path) -> torch.Tensor:
    """The ``ctx`` tensor of a prompt-learner checkpoint: (n_ctx, dim), or (n_cls, n_ctx, dim) when class-specific."""
    if not path.is_file():
        raise UserError(f"Checkpoint not found: {path}. Give a prompt_learner/model.pth.tar-<epoch> file of a CoOp-family run.")
    checkpoint = load_checkpoint(str(path), map_location="cpu")
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else {}
    for key in ("ctx", "prompt_learner.ctx"):
        if key in state:
            return state[key]
    raise UserError(f"{path} holds no context vectors (no 'ctx' key; keys: {', '.join(sorted(state)[:8])}): "
                    "expected the prompt_learner checkpoint of CoOp, CoCoOp, KgCoOp or ProGrad.")  # fmt: skip


def run_backbone(path: Path) -> tuple[str, str]:
    """(MODEL.BACKBONE.NAME, MODEL.BACKBONE.PATH) of the run the checkpoint belongs to, if its config.yaml is there."""
    for folder in path.parents[:3]:
        config = folder / "config.yaml"
        if config.is_file():
            backbone = (yaml.safe_load(config.read_text()) or {}).get("MODEL", {}).get("BACKBONE", {})
            return backbone.get("NAME", "ViT-B/16"), backbone.get("PATH", "")
    return "ViT-B/16", ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="prompt_learner/model.pth.tar-<epoch>")
    parser.add_argument("topk", type=int, nargs="?", default=3, help="words per context vector (default 3)")
    parser.add_argument("--backbone", help="CLIP backbone name (default: the run's, else ViT-B/16)")
    parser.add_argument("--backbone-path", default=None, help="CLIP checkpoint file (default: the run's, else the cache)")
    args = parser.parse_args(argv)
    from trainers.backbone import ClipCheckpointError, load_clip

    try:
        ctx = read_context(args.checkpoint)
        name, path = run_backbone(args.checkpoint)
        name = args.backbone or name
        path = args.backbone_path if args.backbone_path is not None else path
        token_embedding = load_clip(name, path).token_embedding.weight.detach()
    except (UserError, ClipCheckpointError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    if ctx.shape[-1] != token_embedding.shape[1]:
        print(f"Error: the context vectors have width {ctx.shape[-1]}, the {name} token embedding "
              f"{token_embedding.shape[1]}: pass the run's backbone with --backbone / --backbone-path", file=sys.stderr)  # fmt: skip
        return 2
    groups = [("", ctx)] if ctx.dim() == 2 else [(f"class {c}: ", ctx[c]) for c in range(ctx.shape[0])]
    print(f"Context vectors of {args.checkpoint} ({tuple(ctx.shape)}), nearest of {token_embedding.shape[0]} tokens:")
    for prefix, vectors in groups:
        for position, words in enumerate(nearest_words(vectors, token_embedding, args.topk), start=1):
            shown = ", ".join(f"{word} ({distance:.4f})" for word, distance in words)
            print(f"{prefix}{position}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
