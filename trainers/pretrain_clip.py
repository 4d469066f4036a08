"""Contrastive pretraining of a (miniature) CLIP: image-caption pairs, the symmetric InfoNCE loss of CLIP.

Why it exists: the demo needs backbones whose zero-shot accuracy means something, without downloading
anything. The model is an open_clip ``CLIP`` built by ``trainers.backbone.build_clip_from_state_dict`` from an
OpenAI-format state dict, trained here and returned as an OpenAI-format state dict again, so the result loads
through exactly the path real weights take. The data side (images, class names, caption templates) is the
caller's: this module never imports a dataset.

Text is tokenized with CLIP's real BPE tokenizer (``trainers.prompting.tokenize``). Captions are short, so the
text tower runs on the first ``max_tokens`` positions only: with CLIP's causal mask the EOT feature depends only
on the positions up to EOT, so this is the same function as the 77-token forward, just cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .backbone import build_clip_from_state_dict
from .prompting import tokenize

__all__ = ["PretrainSettings", "encode_captions", "contrastive_pretrain", "zero_shot_accuracy", "to_pixels"]

# CLIP's input normalisation (the configs' INPUT.PIXEL_MEAN / PIXEL_STD), so pretraining sees what trainers feed
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class PretrainSettings:
    """The optimisation recipe (part of the content hash that names a cached checkpoint)."""

    steps: int = 200
    batch_size: int = 48
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    seed: int = 0


def to_pixels(images: Tensor) -> Tensor:
    """uint8 (n, h, w, 3) images -> normalised float (n, 3, h, w), as the trainers' transforms produce them."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def encode_captions(model, tokens: Tensor, embed: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """``model.encode_text`` on tokens cut after the longest caption's EOT (exact under the causal mask);
    ``embed`` replaces ``model.token_embedding`` (pretraining trains only the rows its captions use)."""
    length = int((tokens != 0).sum(dim=1).max())
    tokens = tokens[:, :length]
    x = (embed or model.token_embedding)(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]  # the EOT token has the largest id
    return x @ model.text_projection


def _lr_at(step: int, settings: PretrainSettings) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * progress))


def contrastive_pretrain(
    state_dict: Mapping[str, Tensor],
    images: Tensor,
    labels: Tensor,
    classnames: Sequence[str],
    templates: Sequence[str],
    settings: PretrainSettings,
    log: Callable[[str], None] = print,
) -> dict[str, Tensor]:
    """Train every weight of the CLIP in ``state_dict`` on (image, caption) pairs; returns the trained state dict
    (OpenAI key names and order, float16 like OpenAI's files).

    ``images``: uint8 (n, h, w, 3) at the model's resolution; ``labels`` index ``classnames``. A batch holds
    distinct classes (so no caption is a false negative of another image); each caption is a random template.
    Same inputs and settings, same weights (seeded generator, deterministic CPU kernels).
    """
    model = build_clip_from_state_dict(state_dict).train()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))  # CLIP's initial temperature
    generator = torch.Generator().manual_seed(settings.seed)
    caption_tokens = torch.stack(
        [tokenize([t.format(name) for t in templates]) for name in classnames]
    )  # (n_cls, n_templates, 77)
    # Only the vocabulary rows that the captions use are trained (the other 49k rows would get zero gradients
    # but cost AdamW a full update each step); they are written back into the embedding at the end.
    vocab = torch.unique(caption_tokens)
    local = torch.zeros(model.token_embedding.num_embeddings, dtype=torch.long)
    local[vocab] = torch.arange(len(vocab))
    model.token_embedding.weight.requires_grad_(False)
    rows = torch.nn.Parameter(model.token_embedding.weight[vocab].detach().clone())

    def embed(tokens: Tensor) -> Tensor:
        return rows[local[tokens]]

    by_class = [torch.nonzero(labels == c).flatten() for c in range(len(classnames))]
    present = torch.tensor([c for c, idx in enumerate(by_class) if len(idx)])
    batch = min(settings.batch_size, len(present))

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in trainable if not (p.ndim >= 2 and "embedding" not in n)] + [rows]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=settings.lr, betas=(0.9, 0.98), eps=1e-6,
    )  # fmt: skip
    for step in range(settings.steps):
        classes = present[torch.randperm(len(present), generator=generator)[:batch]]
        picks = torch.stack([by_class[c][torch.randint(len(by_class[c]), (1,), generator=generator)] for c in classes])
        pixels = to_pixels(images[picks.flatten()])
        flip = torch.rand(batch, generator=generator) < 0.5
        pixels = torch.where(flip.view(-1, 1, 1, 1), pixels.flip(-1), pixels)
        template = torch.randint(len(templates), (batch,), generator=generator)
        tokens = caption_tokens[classes, template]

        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, settings)
        image_features = F.normalize(model.encode_image(pixels), dim=-1)
        text_features = F.normalize(encode_captions(model, tokens, embed), dim=-1)
        logits = model.logit_scale.exp() * image_features @ text_features.t()  # (batch, batch)
        target = torch.arange(batch)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        if not torch.isfinite(loss):
            raise FloatingPointError(f"contrastive pretraining diverged at step {step} (loss {loss.item()})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % max(1, settings.steps // 5) == 0 or step == settings.steps - 1:
            log(f"  step {step + 1}/{settings.steps}  loss {loss.item():.3f}")

    with torch.no_grad():
        model.token_embedding.weight[vocab] = rows
    trained = model.state_dict()
    return {key: trained[key].detach().to(torch.float16).clone() for key in state_dict}


@torch.no_grad()
def zero_shot_accuracy(
    model, images: Tensor, labels: Tensor, classnames: Sequence[str], template: str = "a photo of a {}."
) -> float:
    """Top-1 accuracy (%) of ``model`` classifying ``images`` by the captions ``template.format(classname)``."""
    model.eval()
    text = F.normalize(encode_captions(model, tokenize([template.format(n) for n in classnames])), dim=-1)
    correct = 0
    for start in range(0, len(images), 256):
        feats = F.normalize(model.encode_image(to_pixels(images[start : start + 256])), dim=-1)
        correct += int((feats @ text.t()).argmax(dim=1).eq(labels[start : start + 256]).sum())
    return 100.0 * correct / max(1, len(images))
