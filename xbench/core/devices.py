"""Device names: checked before any work, so ``--device cuda`` on a machine without CUDA is a clear error."""

from __future__ import annotations

from typing import Any

__all__ = ["check_device", "describe_device", "peak_memory"]


def check_device(name: str) -> str:
    """Return ``name`` when torch can place tensors there; ``ValueError`` saying why not otherwise.

    Accepts what ``torch.device`` accepts (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...) and checks that
    the backend is available (and, for an indexed device, that the index exists).
    """
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {name!r} is not a device name torch knows ({exc})") from None
    if device.type == "cpu":
        return name
    backend = getattr(torch, device.type, None) or getattr(torch.backends, device.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        build = f"this torch {torch.__version__}"
        if device.type == "cuda":
            build += " was built without CUDA" if torch.version.cuda is None else " finds no CUDA GPU"
        else:
            build += f" has no usable {device.type} backend"
        raise ValueError(f"device {name!r} is not available: {build}; use 'cpu' instead")
    count = getattr(backend, "device_count", None)
    if device.index is not None and count is not None and device.index >= count():
        raise ValueError(f"device {name!r} is not available: {count()} {device.type} device(s) found")
    return name


def describe_device(name: str) -> dict[str, Any]:
    """What computed on ``name``, for cache keys and results: the device type, and on CUDA the GPU's name and
    the CUDA and cuDNN versions (the index is left out: two GPUs of one model compute alike)."""
    import torch

    device = torch.device(name)
    if device.type != "cuda":
        return {"type": device.type}
    index = torch.cuda.current_device() if device.index is None else device.index
    return {
        "type": "cuda",
        "gpu": torch.cuda.get_device_name(index),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def peak_memory(name: str) -> dict[str, Any]:
    """Peak memory of this process so far: host resident set (MiB), and on CUDA the allocator's peak (MiB)."""
    import resource
    import sys

    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak = {"host_rss_mib": round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)}
    device = torch.device(name)
    if device.type == "cuda" and torch.cuda.is_available():
        peak["device_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak
