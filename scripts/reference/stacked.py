#!/usr/bin/env python3
"""PyTorch's best batched version of the article's VAE, for the benchmarks: M members as one
model, hand-tuned.

The "model ensembling" idea done by hand: every parameter stacked as [M, in, out] and each
layer one `torch.baddbmm`; each member its own random-index batches (gathered as [M, B, 784]) and
its own β; flushed denormals; `torch.optim.Adam(fused=True)` over the stacked parameters (one
fused kernel per step). The loss is the sum of the members' summed losses, so each member's
gradient is its own. Prints one JSON object per epoch: {"epoch": k, "members": M, "seconds": ...}.

  ~/.cache/vaelab/torch-ref/bin/python scripts/reference/stacked.py --members 11 --epochs 2
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from article import read_idx_images  # noqa: E402


def stacked_linear(m: int, a: int, b: int) -> list[torch.Tensor]:
    """[M, a, b] weight and [M, 1, b] bias, initialised as nn.Linear does (U(±1/√a))."""
    bound = 1.0 / a ** 0.5
    w = torch.empty(m, a, b).uniform_(-bound, bound).requires_grad_()
    bias = torch.empty(m, 1, b).uniform_(-bound, bound).requires_grad_()
    return [w, bias]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=11)
    p.add_argument("--latent", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    default_data = Path(os.environ.get("VAELAB_CACHE", Path.home() / ".cache/vaelab")) / "mnist"
    p.add_argument("--data", type=Path, default=Path(os.environ.get("VAELAB_MNIST", default_data)))
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    images = read_idx_images(args.data / "train-images-idx3-ubyte", args.limit)
    m, h, z, bsz = args.members, args.hidden, args.latent, args.batch_size
    enc1 = stacked_linear(m, 784, h)
    enc2 = stacked_linear(m, h, z)
    mu = stacked_linear(m, z, z)
    lv = stacked_linear(m, z, z)
    dec1 = stacked_linear(m, z, h)
    dec2 = stacked_linear(m, h, 784)
    params = enc1 + enc2 + mu + lv + dec1 + dec2
    betas = (0.5 * torch.arange(m, dtype=torch.float32)).view(m, 1)
    optimizer = torch.optim.Adam(params, lr=args.lr, eps=1e-8, fused=True)
    n = len(images)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        order = torch.stack([torch.randperm(n) for _ in range(m)])  # [M, N]: each member's order
        total = torch.zeros(m)
        for s in range(0, n, bsz):
            x = images[order[:, s:s + bsz]]  # [M, B, 784]
            hid = torch.relu(torch.baddbmm(enc1[1], x, enc1[0]))
            code = torch.baddbmm(enc2[1], hid, enc2[0])
            mean = torch.baddbmm(mu[1], code, mu[0])
            log_var = torch.baddbmm(lv[1], code, lv[0])
            zs = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
            hid = torch.relu(torch.baddbmm(dec1[1], zs, dec1[0]))
            out = torch.sigmoid(torch.baddbmm(dec2[1], hid, dec2[0]))
            recon = (out - x).pow(2).sum(dim=(1, 2))  # [M]
            kld = -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(dim=(1, 2))
            loss = recon + betas[:, 0] * kld
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            total += loss.detach()  # one read per epoch, as a harness would read per batch
        total.tolist()
        print(json.dumps({"epoch": epoch, "members": m, "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
