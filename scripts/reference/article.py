#!/usr/bin/env python3
"""The article's VAE in plain PyTorch eager: the reference vaelab's numbers are checked against.

Same setup as vaelab's defaults (our reconstruction of the article's code): MLP encoder
784-hidden...-latent ending in a plain Linear, heads mu/log_var = Linear(latent, latent),
mirrored decoder with a sigmoid, MSELoss(reduction="sum") on [0, 1] pixels + beta * KLD (summed),
Adam(lr, eps=1e-8), shuffled batches. Prints one JSON object per epoch:
{"epoch": k, "article_loss": ..., "recon": ..., "kl": ..., "seconds": ...}, where article_loss
is the article's printed number (sum over batches of loss.item() * batch size, divided by the
number of training images) and recon/kl are per-image means of the pre-step training batches.

Run it with the torch of ./scripts/setup-reference:
  ~/.cache/vaelab/torch-ref/bin/python scripts/reference/article.py --beta 3 --epochs 10
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from mnist_idx import read_idx_images  # scripts/reference/mnist_idx.py


def mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VAE(nn.Module):
    def __init__(self, hidden: list[int], latent: int):
        super().__init__()
        widths = [784, *hidden, latent]
        self.encoder = mlp(widths)
        self.mu = nn.Linear(latent, latent)
        self.log_var = nn.Linear(latent, latent)
        self.decoder = nn.Sequential(mlp(widths[::-1]), nn.Sigmoid())

    def forward(self, x):
        h = self.encoder(x)
        mu, log_var = self.mu(h), self.log_var(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return self.decoder(z), mu, log_var


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--beta", type=float, default=3.0)
    p.add_argument("--latent", type=int, default=4)
    p.add_argument("--hidden", default="256", help="comma-separated encoder widths")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="first N training images only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--flush-denormal", action="store_true",
                   help="torch.set_flush_denormal(True), as vaelab does (for the benchmarks)")
    default_data = Path(os.environ.get("VAELAB_CACHE", Path.home() / ".cache/vaelab")) / "mnist"
    p.add_argument("--data", type=Path, default=Path(os.environ.get("VAELAB_MNIST", default_data)))
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    images = read_idx_images(args.data / "train-images-idx3-ubyte", args.limit)
    loader = torch.utils.data.DataLoader(
        images, batch_size=args.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    model = VAE([int(h) for h in args.hidden.split(",")], args.latent)
    criterion = nn.MSELoss(reduction="sum")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-8)
    n = len(images)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        total = recon_sum = kl_sum = 0.0
        for data in loader:
            decoded, mu, log_var = model(data)
            recon = criterion(decoded, data)
            kld = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp())
            loss = recon + args.beta * kld if args.beta != 0 else recon
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * data.size(0)
            recon_sum += recon.item()
            kl_sum += kld.item()
        print(json.dumps({
            "epoch": epoch,
            "article_loss": total / n,
            "recon": recon_sum / n,
            "kl": kl_sum / n,
            "seconds": time.perf_counter() - start,
        }), flush=True)


if __name__ == "__main__":
    main()
