"""Running under ``torchrun``: the process group (gloo on CPU, nccl on GPU), DDP wrapping, batch norm over all ranks.

Outside ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) everything here is a no-op and the run
is one process. ``torch.nn.SyncBatchNorm`` works on GPUs only; :class:`GlobalBatchNorm2d` computes the
statistics of the global batch on any backend (two differentiable all-reduces), so a Dasheng front-end
normalises two processes' batches exactly as one process normalises their union.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


def environment_world() -> tuple[int, int, int]:
    """``(rank, local rank, world size)`` from torchrun's environment variables (``(0, 0, 1)`` without them)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def pick_device(requested: str | None, local_rank: int) -> torch.device:
    """``requested``, else this process's GPU (``cuda:LOCAL_RANK``) when there is one, else the CPU."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (nccl for CUDA, else gloo); ``(rank, world size)``."""
    rank, _, size = environment_world()
    if size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (rank, 1)


def shutdown() -> None:
    """Leave the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in one process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_(tensor: torch.Tensor) -> torch.Tensor:
    """Overwrite ``tensor`` with rank 0's, in place."""
    if dist.is_initialized():
        dist.broadcast(tensor, src=0)
    return tensor


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no gradient)."""
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch over all ranks (same state-dict keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        dims = [0, 2, 3]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        count = dist_fn.all_reduce(count)
        mean = dist_fn.all_reduce(x.sum(dims)) / count
        centred = x - mean[None, :, None, None]
        var = dist_fn.all_reduce(centred.pow(2).sum(dims)) / count
        with torch.no_grad():
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
            n = float(count)
            self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(var.detach() * n / max(n - 1, 1), alpha=momentum)
            self.num_batches_tracked.add_(1)
        out = centred / torch.sqrt(var + self.eps)[None, :, None, None]
        return out * self.weight[None, :, None, None] + self.bias[None, :, None, None] if self.affine else out


def convert_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Make ``model``'s BatchNorm2d layers use global-batch statistics (SyncBatchNorm on GPUs), in place."""
    if not dist.is_initialized():
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if type(module) is nn.BatchNorm2d and module.track_running_stats:
            module.__class__ = GlobalBatchNorm2d
    return model


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` inside a process group, else ``model`` itself."""
    if not dist.is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)
