"""Pick the torch device from the config value (``auto`` = CUDA when present)."""
from __future__ import annotations


def resolve_device(device: str = "auto") -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' requested but CUDA is not available; use device: auto or cpu")
    return device
