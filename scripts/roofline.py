#!/usr/bin/env python3
"""The roofline of a stacked training step on this machine (BENCHMARKS.md, "Roofline").

Measures, with libtorch on 2 threads: the GEMM rate (2048² and the article's batched shape),
the memory bandwidth (a 256 MB copy and sum: DRAM; an 8 MB copy: cache), reads the cache
sizes, and prints per benchmarked shape the FLOPs and the least bytes a step must move
(forward and backward GEMMs, the gradient written, Adam reading p, g, m, v and writing p, m,
v), the arithmetic intensity, and the two floors per member-epoch of 60,000 images.

Run with the reference interpreter: `~/.cache/vaelab/torch-ref/bin/python scripts/roofline.py`
(`./scripts/setup-reference` installs it).
"""

import subprocess
import time

import torch

torch.set_num_threads(2)
IMAGES = 60_000
PIXELS = 784


def best(f, n=5):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def machine():
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    gemm = 2 * 2048**3 / best(lambda: a @ b) / 1e9
    x, w, bias = torch.randn(11, 32, 784), torch.randn(11, 784, 256), torch.randn(11, 1, 256)
    t = best(lambda: [torch.baddbmm(bias, x, w) for _ in range(100)]) / 100
    batched = 2 * 11 * 32 * 784 * 256 / t / 1e9
    n = 64 * 2**20
    src, dst = torch.ones(n), torch.empty(n)
    dram = 2 * n * 4 / best(lambda: dst.copy_(src)) / 1e9
    n = 2 * 2**20
    src, dst = torch.ones(n), torch.empty(n)
    cache = 2 * n * 4 / (best(lambda: [dst.copy_(src) for _ in range(20)]) / 20) / 1e9
    caches = subprocess.run(
        "lscpu | grep -E '^(Model name|L2 cache|L3 cache)'",
        shell=True, capture_output=True, text=True,
    ).stdout.split("\n")
    return gemm, batched, dram, cache, [c.split(":", 1)[1].strip() for c in caches if c]


def layers(hidden, latent, layout):
    """(in, out) of every linear layer: encoder, heads, decoder (mirrored)."""
    widths = [PIXELS, *hidden]
    enc = list(zip(widths, widths[1:]))
    if layout == "article":
        enc.append((hidden[-1], latent))
        heads = [(latent, latent)] * 2
    else:
        heads = [(hidden[-1], latent)] * 2
    back = [latent, *reversed(hidden), PIXELS]
    return enc + heads + list(zip(back, back[1:]))


def step(hidden, latent, layout, batch):
    """Per member and step: FLOPs (forward, backward; the images need no gradient), parameters."""
    ls = layers(hidden, latent, layout)
    params = sum(i * o + o for i, o in ls)
    macs = sum(i * o for i, o in ls)
    flops = 2 * batch * macs * 3 - 2 * batch * ls[0][0] * ls[0][1]
    return flops, params


SHAPES = [
    ("article 784-256-4, batch 32", [256], 4, "article", 32, 11),
    ("784-512-256-16, batch 128", [512, 256], 16, "article", 128, 4),
    ("pytorch/examples 784-400-20, batch 128", [400], 20, "heads", 128, 4),
    ("Burda 784-200-200-50, batch 20", [200, 200], 50, "heads", 20, 4),
]


def main():
    gemm, batched, dram, cache, caches = machine()
    print(f"machine: {', '.join(caches)}; GEMM 2048² {gemm:.0f} GFLOP/s, "
          f"11 × (32×784)·(784×256) baddbmm {batched:.0f} GFLOP/s; "
          f"copy 256 MB {dram:.1f} GB/s, 8 MB {cache:.1f} GB/s")
    print()
    print("| shape | members | MFLOP / member-step | MB moved / member-step | FLOP/byte "
          "| compute floor s/member-epoch (2048² rate) | memory floor (DRAM copy rate) | bound |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, hidden, latent, layout, batch, members in SHAPES:
        flops, params = step(hidden, latent, layout, batch)
        # Forward reads W; backward reads W (for ∂x, not the first layer's) and writes ∂W;
        # Adam reads p, g, m, v and writes p, m, v: 10 passes over the parameters, less the
        # first layer's ∂x read (the activations, a few hundred kB, are left out).
        first = layers(hidden, latent, layout)[0]
        passes = 10 * params - first[0] * first[1]
        moved = passes * 4
        steps = IMAGES / batch
        compute = flops * steps / (gemm * 1e9)
        memory = moved * steps / (dram * 1e9)
        bound = "memory" if memory > compute else "compute"
        print(f"| {name} | {members} | {flops / 1e6:.1f} | {moved / 1e6:.1f} | "
              f"{flops / moved:.1f} | {compute:.2f} | {memory:.2f} | {bound} |")
    print()
    print(f"machine balance: {gemm / dram:.1f} FLOP/byte at DRAM rate")


if __name__ == "__main__":
    main()
