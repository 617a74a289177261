"""Device names: checked before any work, so ``--device cuda`` on a machine without CUDA is a clear error."""

from __future__ import annotations

__all__ = ["check_device"]


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
