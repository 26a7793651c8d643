#!/usr/bin/env python3
"""pytorch/examples `vae/main.py` (commit 77f55b9) in plain PyTorch, without torchvision.

A faithful copy of the upstream example's model, loss, optimiser, data order and printed numbers:
encoder fc1 784-400 + ReLU, heads fc21/fc22 400-20 (mu, logvar); decoder fc3 20-400 + ReLU,
fc4 400-784 + sigmoid; PyTorch's default nn.Linear init. Loss F.binary_cross_entropy(recon, x,
reduction="sum") + KLD with KLD = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)), summed over the
batch; Adam(lr=1e-3); batch 128, train shuffled, test not; grey levels in [0, 1], not binarised
(the same tensors as torchvision's ToTensor()). The IDX files are read directly instead of through
torchvision's MNIST, and the upstream's image saving is left out, but its draws from the global
generator are kept (both loaders use it, as upstream, and torch.randn(64, 20) is drawn after each
epoch for the sample grid), so on CPU the random stream is the upstream's for the same seed.

Prints one JSON object per epoch:
{"epoch": k, "train_loss": ..., "test_loss": ..., "seconds": ...}, where train_loss is the
upstream's "Average loss" (sum of the pre-step batch losses / number of training images) and
test_loss its "Test set loss" (sum over the test set of BCE + KLD with one reparameterised draw,
/ number of test images; model.eval() does not stop the sampling); seconds covers train + test.

Run it with the torch of ./scripts/setup-reference:
  ~/.cache/vaelab/torch-ref/bin/python scripts/reference/pytorch_examples.py --seed 1 --epochs 10
(the upstream's default seed is 1).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.utils.data
from torch import nn, optim
from torch.nn import functional as F

from mnist_idx import read_idx_images  # scripts/reference/mnist_idx.py


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1, help="torch.manual_seed (upstream default 1)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--limit", type=int, default=None, help="first N training images only")
    p.add_argument("--test-limit", type=int, default=None, help="first N test images only")
    p.add_argument("--threads", type=int, default=1)
    default_data = Path(os.environ.get("VAELAB_CACHE", Path.home() / ".cache/vaelab")) / "mnist"
    p.add_argument("--data", type=Path, default=Path(os.environ.get("VAELAB_MNIST", default_data)),
                   help="directory holding train-images-idx3-ubyte and t10k-images-idx3-ubyte")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_images = read_idx_images(args.data / "train-images-idx3-ubyte", args.limit)
    test_images = read_idx_images(args.data / "t10k-images-idx3-ubyte", args.test_limit)
    # No generator: like the upstream, both loaders draw from the global generator.
    train_loader = torch.utils.data.DataLoader(train_images, batch_size=args.batch_size, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_images, batch_size=args.batch_size, shuffle=False)

    model = VAE()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        train_loss = 0.0
        for data in train_loader:
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()

        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for data in test_loader:
                recon_batch, mu, logvar = model(data)
                test_loss += loss_function(recon_batch, data, mu, logvar).item()
            seconds = time.perf_counter() - start
            # The upstream decodes 64 prior draws per epoch for its sample grid; kept for the RNG.
            model.decode(torch.randn(64, 20))

        print(json.dumps({
            "epoch": epoch,
            "train_loss": train_loss / len(train_loader.dataset),
            "test_loss": test_loss / len(test_loader.dataset),
            "seconds": seconds,
        }), flush=True)


if __name__ == "__main__":
    main()
