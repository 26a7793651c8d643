#!/usr/bin/env python3
"""PyTorch's best batched version of a VAE, for the benchmarks: M members as one model,
hand-tuned.

The "model ensembling" idea done by hand: every parameter stacked as [M, in, out] and each
layer one `torch.baddbmm`; each member its own random-index batches (gathered as [M, B, 784]) and
its own β; flushed denormals; `torch.optim.Adam(fused=True)` over the stacked parameters (one
fused kernel per step). The loss is the sum of the members' summed losses, so each member's
gradient is its own. Prints one JSON object per epoch: {"epoch": k, "members": M, "seconds": ...}.

The defaults are the article's VAE (vaelab's defaults): encoder 784-256-4 ReLU ending in a plain
linear code, heads μ/log σ² = Linear(latent, latent) on the code, mirrored decoder with a
sigmoid, summed squared error on grey levels, Adam ε 1e-8, and member i's β = 0.5·i (the β
sweep). The options give the literature's setups:

- `--layout heads`: the heads sit on the last hidden layer (activated), hidden[-1] → latent, and
  the encoder has no code layer (pytorch/examples' VAE, Burda et al.'s).
- `--activation tanh`: the hidden layers' nonlinearity (encoder and decoder).
- `--loss bce-logits`: binary cross-entropy from the decoder's logits, summed over pixels
  (`F.binary_cross_entropy_with_logits`; vaelab's `likelihood = "bernoulli"`).
- `--binarize dynamic`: each batch's pixels drawn as x ~ Bernoulli(grey level) afresh per step
  (`torch.bernoulli`), input and target alike (vaelab's `binarize = "dynamic"` draws per epoch).
- `--beta B`: every member's β is B (members then differ only in their initial weights, noise
  and batch order, like runs differing in seed).
- `--adam-eps`: Adam's ε.

  ~/.cache/vaelab/torch-ref/bin/python scripts/reference/stacked.py --members 11 --epochs 2
  # pytorch/examples' VAE, 4 members:
  ... stacked.py --members 4 --beta 1 --hidden 400 --latent 20 --layout heads \\
      --loss bce-logits --batch-size 128
  # Burda et al.'s, 4 members:
  ... stacked.py --members 4 --beta 1 --hidden 200,200 --latent 50 --activation tanh \\
      --layout heads --loss bce-logits --binarize dynamic --batch-size 20 --adam-eps 1e-4
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_idx import read_idx_images  # noqa: E402

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


def stacked_linear(m: int, a: int, b: int) -> list[torch.Tensor]:
    """[M, a, b] weight and [M, 1, b] bias, initialised as nn.Linear does (U(±1/√a))."""
    bound = 1.0 / a ** 0.5
    w = torch.empty(m, a, b).uniform_(-bound, bound).requires_grad_()
    bias = torch.empty(m, 1, b).uniform_(-bound, bound).requires_grad_()
    return [w, bias]


def stacked_mlp(m: int, widths: list[int]) -> list[list[torch.Tensor]]:
    return [stacked_linear(m, a, b) for a, b in zip(widths, widths[1:])]


def forward_mlp(layers: list[list[torch.Tensor]], x: torch.Tensor, act, activate_last: bool) -> torch.Tensor:
    """`x` [M, B, in] through every layer, `act` between them (and after the last if asked)."""
    last = len(layers) - 1
    for k, (w, b) in enumerate(layers):
        x = torch.baddbmm(b, x, w)
        if k < last or activate_last:
            x = act(x)
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=11)
    p.add_argument("--latent", type=int, default=4)
    p.add_argument("--hidden", default="256", help="comma-separated encoder widths (the decoder mirrors them)")
    p.add_argument("--layout", choices=["article", "heads"], default="article",
                   help="article: a linear code of the latent size, then latent→latent heads; "
                        "heads: the heads on the last hidden layer")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--loss", choices=["mse", "bce-logits"], default="mse",
                   help="mse: summed squared error of the sigmoid's output; bce-logits: summed "
                        "binary cross-entropy from the logits")
    p.add_argument("--binarize", choices=["none", "dynamic"], default="none",
                   help="dynamic: x ~ Bernoulli(grey level), drawn afresh for every batch")
    p.add_argument("--beta", type=float, default=None,
                   help="every member's β (default: member i's is 0.5·i, the β sweep)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--adam-eps", type=float, default=1e-8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    default_data = Path(os.environ.get("VAELAB_CACHE", Path.home() / ".cache/vaelab")) / "mnist"
    p.add_argument("--data", type=Path, default=Path(os.environ.get("VAELAB_MNIST", default_data)))
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    images = read_idx_images(args.data / "train-images-idx3-ubyte", args.limit)
    m, z, bsz = args.members, args.latent, args.batch_size
    hidden = [int(h) for h in args.hidden.split(",")]
    act = ACTIVATIONS[args.activation]
    heads_on_hidden = args.layout == "heads"
    # Created in the order encoder, heads, decoder (the article layout with one hidden layer
    # draws its initial weights exactly as before the options existed).
    encoder = stacked_mlp(m, [784, *hidden] if heads_on_hidden else [784, *hidden, z])
    head_in = hidden[-1] if heads_on_hidden else z
    mu = stacked_linear(m, head_in, z)
    lv = stacked_linear(m, head_in, z)
    decoder = stacked_mlp(m, [z, *hidden[::-1], 784])
    params = [t for layer in encoder for t in layer] + mu + lv + [t for layer in decoder for t in layer]
    if args.beta is None:
        betas = 0.5 * torch.arange(m, dtype=torch.float32)
    else:
        betas = torch.full((m,), args.beta, dtype=torch.float32)
    optimizer = torch.optim.Adam(params, lr=args.lr, eps=args.adam_eps, fused=True)
    n = len(images)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        order = torch.stack([torch.randperm(n) for _ in range(m)])  # [M, N]: each member's order
        total = torch.zeros(m)
        for s in range(0, n, bsz):
            x = images[order[:, s:s + bsz]]  # [M, B, 784]
            if args.binarize == "dynamic":
                x = torch.bernoulli(x)
            code = forward_mlp(encoder, x, act, activate_last=heads_on_hidden)
            mean = torch.baddbmm(mu[1], code, mu[0])
            log_var = torch.baddbmm(lv[1], code, lv[0])
            zs = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
            logits = forward_mlp(decoder, zs, act, activate_last=False)
            if args.loss == "mse":
                recon = (torch.sigmoid(logits) - x).pow(2).sum(dim=(1, 2))  # [M]
            else:
                recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2))
            kld = -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(dim=(1, 2))
            loss = recon + betas * kld
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            total += loss.detach()  # one read per epoch, as a harness would read per batch
        total.tolist()
        print(json.dumps({"epoch": epoch, "members": m, "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
