"""The prompt machinery every method shares, added to an *unmodified* open_clip CLIP.

* ``TextEncoder``: CLIP's text tower over prompt *embeddings* (positional embedding, causal mask, ln_final,
  EOT pooling, projection), optionally in chunks of classes with activation checkpointing.
* ``TextPromptLearner``: learnable context tokens between SOS and the class name (CoOp family and IVLP family
  initialisation, generic or class-specific context, class-token position).
* ``DeepPrompts`` + ``VisionPromptHooks`` / ``TextPromptHooks``: deep prompts (VPT-deep / IVLP / MaPLe).
  The hooks insert the prompt tokens into the backbone's own blocks through forward hooks, so the backbone's
  parameter names and code stay as they are, and the same frozen backbone runs prompt-free when no prompts are
  set (PromptSRC's frozen reference encoder shares it instead of keeping a second copy).

Layout conventions (upstream's; docs/design.md#deep-prompts): prompt depth J counts the input layer. Vision: layer-0
prompts are appended after [CLS, patches] (after the positional embedding, before ln_pre); block i in 1..J-1
replaces the last n_ctx tokens with its own. Text: layer-0 prompts are the learner's context (positions
1..n_ctx); block i in 1..J-1 overwrites positions 1..n_ctx. Prompts are fp32 parameters cast to the activation
dtype where they are inserted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from dassl.utils.errors import UserError

from .templates import DEFAULT_TEMPLATE

__all__ = [
    "tokenize",
    "class_text_features",
    "TextEncoder",
    "TextPromptLearner",
    "DeepPrompts",
    "VisionPromptHooks",
    "TextPromptHooks",
    "freeze_all_but",
    "trainable_parameters",
    "format_trainable_report",
]


def tokenize(texts: str | Sequence[str], context_length: int = 77) -> torch.Tensor:
    """CLIP's BPE tokenizer (SOS ... EOT, zero-padded to ``context_length``)."""
    return open_clip.tokenize(texts, context_length=context_length)


# ----------------------------------------------------------------------------------------------------------
# text tower over embeddings


CLASS_PROMPT = DEFAULT_TEMPLATE  # "a photo of a {}."


@torch.no_grad()
def class_text_features(
    clip_model: nn.Module, classnames: Sequence[str], templates: Sequence[str] = (CLASS_PROMPT,), normalize: bool = True
) -> torch.Tensor:
    """The frozen CLIP's text features per class (n_cls, embed_dim), averaged over ``templates``: the one place
    that turns class names into fixed text features (zero-shot classifiers, KgCoOp's anchor, ProGrad's zero-shot
    logits, VPT's and CLIP-Adapter's classifier, PromptSRC's references).

    ``normalize``: each template's features are L2-normalised before averaging and the mean is normalised again
    (CoOp's zero-shot ensemble; with one template simply the normalised features). ``normalize=False`` averages
    the raw features (PromptSRC's ``fixed_embeddings``).
    """
    device = clip_model.logit_scale.device
    context_length = clip_model.positional_embedding.shape[0]
    names = [name.replace("_", " ") for name in classnames]
    per_template = []
    for template in templates:
        tokens = tokenize([template.format(name) for name in names], context_length).to(device)
        features = clip_model.encode_text(tokens)  # no prompts are set: the frozen CLIP
        per_template.append(F.normalize(features, dim=-1) if normalize else features)
    mean = torch.stack(per_template, dim=1).mean(dim=1)  # (n_cls, d)
    return F.normalize(mean, dim=-1) if normalize and len(per_template) > 1 else mean


class TextEncoder(nn.Module):
    """CLIP's text tower applied to prompt embeddings instead of token ids.

    ``chunk_size`` > 0 encodes the classes in chunks of that many prompts; with gradients enabled each chunk is
    recomputed in the backward pass (activation checkpointing), so memory does not grow with the class count.
    """

    def __init__(self, clip_model: nn.Module, chunk_size: int = 0) -> None:
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)
        self.chunk_size = chunk_size

    def _encode(self, prompts: torch.Tensor, tokenized_prompts: torch.Tensor) -> torch.Tensor:
        x = prompts + self.positional_embedding.to(prompts.dtype)  # (n, L, d)
        attn_mask = self.attn_mask.to(x.dtype) if self.attn_mask is not None else None
        x = self.transformer(x, attn_mask=attn_mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokenized_prompts.argmax(dim=-1)]  # EOT token, (n, d)
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection.to(x.dtype)

    def forward(self, prompts: torch.Tensor, tokenized_prompts: torch.Tensor) -> torch.Tensor:
        n = prompts.shape[0]
        if self.chunk_size <= 0 or n <= self.chunk_size:
            return self._encode(prompts, tokenized_prompts)
        outputs = []
        for start in range(0, n, self.chunk_size):
            chunk = slice(start, start + self.chunk_size)
            if torch.is_grad_enabled() and prompts.requires_grad:
                outputs.append(checkpoint(self._encode, prompts[chunk], tokenized_prompts[chunk], use_reentrant=False))
            else:
                outputs.append(self._encode(prompts[chunk], tokenized_prompts[chunk]))
        return torch.cat(outputs)


# ----------------------------------------------------------------------------------------------------------
# text prompt learner


class TextPromptLearner(nn.Module):
    """Learnable context vectors placed around the class-name tokens.

    ``init_family`` follows upstream: ``"coop"`` (CoOp, CoCoOp, KgCoOp) takes n_ctx from the words of
    ``ctx_init`` when it is set; ``"ivlp"`` (IVLP, MaPLe, PromptSRC, PromptKD) keeps ``n_ctx`` and uses the first
    n_ctx token embeddings of ``ctx_init`` only if ``n_ctx <= 4``, while the prompt text stays the whole phrase.
    Otherwise the context is N(0, 0.02) with an ``"X X ... X"`` placeholder. ``csc`` gives every class its own
    context; ``class_token_position`` is ``end``, ``middle`` or ``front``.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        classnames: Sequence[str],
        n_ctx: int,
        ctx_init: str = "",
        init_family: str = "coop",
        csc: bool = False,
        class_token_position: str = "end",
    ) -> None:
        super().__init__()
        if init_family not in ("coop", "ivlp"):
            raise ValueError(f"init_family must be 'coop' or 'ivlp', got {init_family!r}")
        if class_token_position not in ("end", "middle", "front"):
            raise ValueError(f"CLASS_TOKEN_POSITION must be end, middle or front, got {class_token_position!r}")
        context_length = clip_model.positional_embedding.shape[0]
        ctx_dim = clip_model.ln_final.weight.shape[0]
        embed = clip_model.token_embedding
        dtype = torch.float32  # trainable tensors are fp32 masters (docs/design.md#precision)

        ctx_init = ctx_init.replace("_", " ").strip()
        use_phrase = bool(ctx_init) and (init_family == "coop" or n_ctx <= 4)
        if use_phrase:
            if init_family == "coop":
                n_ctx = len(ctx_init.split(" "))
            with torch.no_grad():
                embedding = embed(tokenize(ctx_init, context_length).to(embed.weight.device)).to(dtype).cpu()
            ctx_vectors = embedding[0, 1 : 1 + n_ctx, :].clone()
            prompt_prefix = ctx_init  # as upstream, CSC only applies to random context
        else:
            shape = (len(classnames), n_ctx, ctx_dim) if csc else (n_ctx, ctx_dim)
            ctx_vectors = torch.empty(shape, dtype=dtype)
            nn.init.normal_(ctx_vectors, std=0.02)
            prompt_prefix = " ".join(["X"] * n_ctx)
        self.ctx = nn.Parameter(ctx_vectors)  # (n_ctx, d) or (n_cls, n_ctx, d)

        classnames = [name.replace("_", " ") for name in classnames]
        self.name_lens = [len(tokenize(name, context_length)[0].nonzero()) - 2 for name in classnames]
        prompts = [f"{prompt_prefix} {name}." for name in classnames]
        tokenized_prompts = tokenize(prompts, context_length)  # (n_cls, L)
        with torch.no_grad():
            embedding = embed(tokenized_prompts.to(embed.weight.device)).to(dtype).cpu()
        # Fixed token embeddings; rebuilt from the class names, never loaded from a checkpoint.
        self.register_buffer("token_prefix", embedding[:, :1, :], persistent=False)  # SOS
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx :, :], persistent=False)  # CLS . EOT pad
        self.register_buffer("tokenized_prompts", tokenized_prompts, persistent=False)

        self.n_cls = len(classnames)
        self.n_ctx = n_ctx
        self.prompt_prefix = prompt_prefix
        self.class_token_position = class_token_position
        self.prompts_text = prompts

    def forward(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Prompt embeddings (n_cls, L, d); ``ctx`` overrides the learned context (e.g. CoCoOp's ctx + bias)."""
        ctx = self.ctx if ctx is None else ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        prefix = self.token_prefix.to(ctx.dtype)
        suffix = self.token_suffix.to(ctx.dtype)
        if self.class_token_position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)
        half = self.n_ctx // 2
        rows = []
        for i, name_len in enumerate(self.name_lens):
            class_tokens = suffix[i : i + 1, :name_len]
            rest = suffix[i : i + 1, name_len:]
            if self.class_token_position == "middle":
                rows.append(torch.cat([prefix[i : i + 1], ctx[i : i + 1, :half], class_tokens, ctx[i : i + 1, half:], rest], 1))
            else:  # front
                rows.append(torch.cat([prefix[i : i + 1], class_tokens, ctx[i : i + 1], rest], 1))
        return torch.cat(rows, dim=0)


# ----------------------------------------------------------------------------------------------------------
# deep prompts


class DeepPrompts(nn.Module):
    """Prompt tokens for layers ``first_layer .. depth-1``: parameters ``layer{i}`` of shape (n_ctx, width).

    Vision prompts start at layer 0 (the input prompts); text prompts at layer 1 (layer 0 is the learner's
    context). Initialised N(0, 0.02) as upstream.
    """

    def __init__(self, n_ctx: int, width: int, depth: int, first_layer: int = 0, std: float = 0.02) -> None:
        super().__init__()
        self.n_ctx = n_ctx
        self.first_layer = first_layer
        self.depth = depth
        self.prompts = nn.ParameterDict(
            {f"layer{i}": nn.Parameter(torch.empty(n_ctx, width).normal_(std=std)) for i in range(first_layer, depth)}
        )

    def layers(self) -> list[int]:
        return list(range(self.first_layer, self.depth))

    def as_dict(self) -> dict[int, torch.Tensor]:
        """{layer index: prompt tensor}, the form the hooks take."""
        return {i: self.prompts[f"layer{i}"] for i in self.layers()}


class _PromptHooks:
    """Common part of the vision and text hooks: the prompts of the forward pass in flight, and the handles."""

    def __init__(self) -> None:
        self._current: dict[int, torch.Tensor] | None = None
        self._handles: list = []

    @contextmanager
    def prompts(self, prompts: dict[int, torch.Tensor] | None) -> Iterator[None]:
        """Insert ``prompts`` ({layer: (n_ctx, width)}) during the forward passes run inside this block."""
        previous = self._current
        self._current = prompts
        try:
            yield
        finally:
            self._current = previous

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _make_replace(self, layer: int):
        """A forward pre-hook for block ``layer`` that puts this layer's prompts into the tokens (``_splice``)."""

        def hook(module, args, kwargs):
            if self._current is None:
                return None
            x = args[0]
            n = self._current[layer].shape[0]
            prompt = self._expand(self._current[layer], x, self.batch_first)
            return (self._splice(x, prompt, n), *args[1:]), kwargs

        return hook

    def _splice(self, x: torch.Tensor, prompt: torch.Tensor, n: int) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def _expand(prompt: torch.Tensor, like: torch.Tensor, batch_first: bool) -> torch.Tensor:
        batch = like.shape[0] if batch_first else like.shape[1]
        p = prompt.to(like.dtype).unsqueeze(0).expand(batch, -1, -1)  # (B, n_ctx, d)
        return p if batch_first else p.transpose(0, 1)


class VisionPromptBackboneError(UserError, ValueError):
    """A vision-prompt method was given a backbone without a vision transformer (a ResNet)."""


class VisionPromptHooks(_PromptHooks):
    """Deep visual prompts on an open_clip ``VisionTransformer``: appended at the input, replaced in blocks."""

    def __init__(self, visual: nn.Module, depth: int) -> None:
        super().__init__()
        if depth >= 1 and not hasattr(visual, "transformer"):
            raise VisionPromptBackboneError(
                f"Vision prompts go into the blocks of a vision transformer, and this backbone's image encoder is a "
                f"{type(visual).__name__} (a ResNet such as RN50/RN101) without any. Use a ViT backbone "
                "(MODEL.BACKBONE.NAME ViT-B/16 or ViT-B/32 and its configs), or a text-prompt method on the ResNet "
                "(CoOp, CoCoOp, KgCoOp, ZeroshotCLIP: configs/trainers/CoOp/rn50*.yaml)."
            )
        blocks = visual.transformer.resblocks
        if depth > len(blocks):
            raise ValueError(f"Vision prompt depth {depth} exceeds the {len(blocks)} blocks of the vision tower")
        self.batch_first = getattr(visual.transformer, "batch_first", True)
        self.depth = depth
        if depth >= 1:
            # after the positional embedding, before ln_pre (patch_dropout sits exactly there)
            self._handles.append(visual.patch_dropout.register_forward_hook(self._append_input_prompts))
        for i in range(1, depth):
            self._handles.append(blocks[i].register_forward_pre_hook(self._make_replace(i), with_kwargs=True))

    def _append_input_prompts(self, module, args, output):
        if self._current is None:
            return output
        # patch_dropout always sees batch-first tokens (B, 1 + grid^2, d)
        return torch.cat([output, self._expand(self._current[0], output, True)], dim=1)

    def _splice(self, x: torch.Tensor, prompt: torch.Tensor, n: int) -> torch.Tensor:
        """The last ``n`` tokens are the previous block's prompts: replace them."""
        return torch.cat([x[:, :-n], prompt], dim=1) if self.batch_first else torch.cat([x[:-n], prompt], dim=0)


class TextPromptHooks(_PromptHooks):
    """Deep text prompts on an open_clip text ``Transformer``: block i overwrites positions 1..n_ctx."""

    def __init__(self, transformer: nn.Module, depth: int) -> None:
        super().__init__()
        blocks = transformer.resblocks
        if depth > len(blocks):
            raise ValueError(f"Text prompt depth {depth} exceeds the {len(blocks)} blocks of the text tower")
        self.batch_first = getattr(transformer, "batch_first", True)
        self.depth = depth
        for i in range(1, depth):
            self._handles.append(blocks[i].register_forward_pre_hook(self._make_replace(i), with_kwargs=True))

    def _splice(self, x: torch.Tensor, prompt: torch.Tensor, n: int) -> torch.Tensor:
        """Positions 1..n (after SOS) hold the context: overwrite them."""
        if self.batch_first:
            return torch.cat([x[:, :1], prompt, x[:, 1 + n :]], dim=1)
        return torch.cat([x[:1], prompt, x[1 + n :]], dim=0)


# ----------------------------------------------------------------------------------------------------------
# trainable parameters


def freeze_all_but(model: nn.Module, trainable: Sequence[nn.Module]) -> None:
    """Freeze every parameter of ``model`` except those of the ``trainable`` modules."""
    keep = {id(p) for module in trainable for p in module.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def trainable_parameters(model: nn.Module) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, numel) of every trainable parameter, in registration order."""
    return [(name, tuple(p.shape), p.numel()) for name, p in model.named_parameters() if p.requires_grad]


def format_trainable_report(model: nn.Module) -> str:
    """A short table of the trainable tensors and their total, for the log."""
    rows = trainable_parameters(model)
    lines = [f"  {name:<60} {str(shape):<16} {numel:>10,}" for name, shape, numel in rows]
    total = sum(numel for _, _, numel in rows)
    return "Trainable parameters:\n" + "\n".join(lines) + f"\n  {'total':<60} {'':<16} {total:>10,}"
