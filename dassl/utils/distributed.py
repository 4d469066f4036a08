"""Data-parallel training over several processes (``torchrun``), without wrapping the model.

Upstream Dassl only knows ``nn.DataParallel`` (slower on 8 GPUs than on one, CoOp issue #14). Here every process
holds the whole model and a shard of each epoch (``DistributedSampler``); after the backward pass the gradients
of the trainable tensors are averaged over processes (what DDP does), so every process takes the same optimizer
step. The trainable tensors of prompt learners are small, so one flat all-reduce per step is cheap. Only the main
process evaluates and writes logs, checkpoints and ``results.json``.

    torchrun --standalone --nproc_per_node 4 train.py ...       # or: LAUNCH="torchrun ..." bash scripts/...

The batch size is per process (global batch = ``BATCH_SIZE`` × processes), as with DDP. Differences from a
single process beyond the batch: each process draws its own augmentations (seed + rank); BatchNorm statistics (the
PromptKD projector) are the main process's, computed on its shard; a resumed run restores the main process's RNG
state on every process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    return rank() == 0


def init_distributed(use_cuda: bool = True) -> bool:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1); returns whether distributed.

    NCCL with one GPU per process (``LOCAL_RANK``) when CUDA is used, else gloo (CPU).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if dist.is_initialized():
        return True
    cuda = use_cuda and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def all_reduce_gradients(parameters: Iterable[torch.Tensor]) -> None:
    """Average the gradients of ``parameters`` over processes (one flat all-reduce); no-op in one process.

    Every process must pass the same parameters in the same order (the same model). Parameters without a
    gradient are skipped on every process alike, since all processes run the same forward pass.
    """
    if world_size() == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_from_main(tensors: Iterable[torch.Tensor]) -> None:
    """Copy ``tensors`` from the main process to the others (e.g. randomly initialised prompts)."""
    if world_size() == 1:
        return
    for tensor in tensors:
        dist.broadcast(tensor.data, src=0)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
