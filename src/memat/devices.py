"""Which torch device to use by default; a leaf module (it imports nothing from memat).

The data layer (:mod:`memat.data.align`) needs the default device without importing :mod:`memat.models`,
which is above it; :func:`memat.models.default_device` is the same rule.
"""
from __future__ import annotations

import torch

__all__ = ["default_device"]


def default_device() -> torch.device:
    """CUDA if present, else Apple MPS, else CPU (never hard-coded)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
