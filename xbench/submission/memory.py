"""Memory verdicts against the challenge machine: host RAM of the whole process tree, GPU memory as CUDA sees it.

The ICME 2025 challenge ran submissions in a Colab T4 session: 12 GiB of RAM and a 16 GB T4, of which
CUDA exposes about 15 GiB (``nvidia-smi`` shows 15360 MiB with ECC on). What a run needs on the GPU is
what PyTorch's caching allocator holds at its peak (``max_memory_reserved``, not the smaller
``max_memory_allocated``) plus what lives outside the allocator: the CUDA context and library handles.
Both are measured here on the batch size a run encodes, with no peak reset in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

RAM_LIMIT = 12 * 2**30
GPU_LIMIT = 15 * 2**30


def gib(n: float) -> str:
    """``n`` bytes as ``"1.23 GiB"``."""
    return f"{n / 2**30:.2f} GiB"


@dataclass(frozen=True)
class GpuMemory:
    """GPU memory of one measured forward pass (bytes)."""

    reserved_peak: int  # torch.cuda.max_memory_reserved since the process started (never reset)
    outside_allocator: int  # device memory in use beyond what the allocator holds: CUDA context, cuDNN/cuBLAS
    device_total: int

    @property
    def peak(self) -> int:
        """What the run needs on the device: the allocator's peak plus the memory outside it."""
        return self.reserved_peak + self.outside_allocator

    def to_dict(self) -> dict[str, int]:
        return asdict(self) | {"peak": self.peak}


def measure_gpu_memory(run_batch: Callable[[], Any], device: str) -> GpuMemory:
    """Run ``run_batch()`` on CUDA ``device`` and measure its memory without resetting any peak.

    The memory outside the allocator is the device's used memory (``mem_get_info``) less what the
    allocator reserves now; it also counts other processes on the same GPU, so it errs high.
    """
    import torch

    run_batch()
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    outside = max(0, int(total) - int(free) - int(torch.cuda.memory_reserved(device)))
    return GpuMemory(int(torch.cuda.max_memory_reserved(device)), outside, int(total))


def memory_verdict(peak: int, limit: int, what: str) -> tuple[bool, str]:
    """(``peak <= limit``, a one-line account of it)."""
    return peak <= limit, f"{what} {gib(peak)} of the {gib(limit)} limit"
