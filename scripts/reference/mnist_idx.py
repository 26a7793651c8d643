"""The MNIST IDX image files as torch tensors: what every plain-PyTorch reference reads."""

import struct
import sys
from pathlib import Path

import torch


def read_idx_images(path: Path, limit: int | None) -> torch.Tensor:
    """The first `limit` images (all when None) of an IDX image file, as [n, 784] floats in [0, 1]."""
    data = path.read_bytes()
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 2051 or rows * cols != 784:
        sys.exit(f"{path}: not an MNIST image file (magic {magic})")
    n = min(n, limit) if limit else n
    pixels = torch.frombuffer(bytearray(data[16 : 16 + n * 784]), dtype=torch.uint8)
    return pixels.view(n, 784).float() / 255.0
