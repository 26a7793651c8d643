#!/usr/bin/env python3
"""Benchmark driver for ./scripts/bench: PyTorch eager (as written, and with flushed denormals) vs
vaelab (harness, bare loop, flex), plus the arithmetic floor, start-up, no-op relaunch, evaluation
time and peak memory; and, at every shape (the article's, 784-512-256-16, pytorch/examples' VAE,
Burda et al.'s), vaelab stacked vs the hand-tuned PyTorch stack (scripts/reference/stacked.py), per member-epoch.

Every contender trains the same model on the same 60,000 MNIST images with the same batch
size, Adam and 2 threads. Each repetition runs all contenders, in an order that rotates between
repetitions; the figure per contender is the median (and min-max spread) over repetitions of the
seconds of a training epoch (the second epoch of each process, so start-up and first-touch costs
are excluded). Writes BENCHMARKS.md and benchmarks.json at the repository root.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("VAELAB_CACHE", Path.home() / ".cache/vaelab"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path(__file__).resolve().parent.parent / "target"))
VAELAB = TARGET / "release/vaelab"
BARE = TARGET / "release/examples/bare_loop"
TORCH_PY = Path(os.environ.get("VAELAB_TORCH_PYTHON", CACHE / "torch-ref/bin/python"))
REFERENCE = REPO / "scripts/reference/article.py"
STACKED_REFERENCE = REPO / "scripts/reference/stacked.py"
IMAGES = 60_000

WORKLOADS = {
    "article": {"hidden": [256], "latent": 4, "batch": 32, "what": "784-256-4 VAE, batch 32 (the article's setup)"},
    "large": {"hidden": [512, 256], "latent": 16, "batch": 128, "what": "784-512-256-16 VAE, batch 128"},
}

# Every shape, stacked: `members` runs differing only in seed, trained as one stack by
# `vaelab sweep --stack MEMBERS` (the matrix keys in "vaelab") and by scripts/reference/stacked.py
# (its options in "pytorch"), 2 epochs, the second timed. With a `limit` both train on the first
# `limit` images and the figure is scaled to 60,000 (per-step costs are the same at any limit).
STACKED_WORKLOADS = {
    "article_stacked": {
        "what": "the article's VAE: 784-256-4 ReLU, Gaussian (summed squared error), batch 32, Adam 1e-3",
        "members": 11,
        "limit": 12_000,
        "vaelab": {"hidden": [256], "latent": 4, "batch_size": 32, "beta": 1.0},
        "pytorch": ["--hidden", "256", "--latent", 4, "--batch-size", 32, "--beta", 1],
    },
    "large_stacked": {
        "what": "784-512-256-16 ReLU, Gaussian, batch 128, Adam 1e-3",
        "members": 4,
        "limit": 30_000,
        "vaelab": {"hidden": [512, 256], "latent": 16, "batch_size": 128, "beta": 1.0},
        "pytorch": ["--hidden", "512,256", "--latent", 16, "--batch-size", 128, "--beta", 1],
    },
    "pytorch_examples": {
        "what": "pytorch/examples' VAE: 784-400-20 ReLU, heads on the hidden layer, Bernoulli "
                "(BCE from logits) on grey levels, batch 128, Adam 1e-3",
        "members": 4,
        "limit": None,
        "vaelab": {"hidden": [400], "latent": 20, "layout": "heads", "likelihood": "bernoulli",
                   "batch_size": 128, "beta": 1.0},
        "pytorch": ["--hidden", "400", "--latent", 20, "--layout", "heads", "--loss", "bce-logits",
                    "--batch-size", 128, "--beta", 1],
    },
    "burda": {
        "what": "Burda et al.'s VAE: 784-200-200-50 tanh, heads on the last hidden layer, Bernoulli "
                "on dynamically binarised pixels, batch 20, Adam ε 1e-4",
        "members": 4,
        "limit": 30_000,
        "vaelab": {"hidden": [200, 200], "latent": 50, "activation": "tanh", "layout": "heads",
                   "likelihood": "bernoulli", "binarize": "dynamic", "batch_size": 20,
                   "adam_eps": 1e-4, "beta": 1.0},
        "pytorch": ["--hidden", "200,200", "--latent", 50, "--activation", "tanh", "--layout", "heads",
                    "--loss", "bce-logits", "--binarize", "dynamic", "--batch-size", 20,
                    "--adam-eps", 1e-4, "--beta", 1],
    },
}


def env(threads: int = 2) -> dict:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), RAYON_NUM_THREADS=str(threads))
    return e


# What the `vaelab` launcher sets for libtorch's OpenMP (src/main.rs); programs that link
# libtorch directly (the bare loop, and PyTorch where named so) get it from here.
SPIN = {"GOMP_SPINCOUNT": "20000"}


def run(cmd: list, extra: dict | None = None, **kw) -> subprocess.CompletedProcess:
    e = env()
    e.update(extra or {})
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=e, **kw)
    if out.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed:\n{out.stderr[-2000:]}")
    return out


def epoch_json(stdout: str) -> list:
    """The per-epoch JSON objects a contender prints, one a line."""
    return [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]


def epoch_seconds_json(stdout: str) -> list:
    return [e["seconds"] for e in epoch_json(stdout)]


def pytorch(w: dict, epochs: int, flush_denormal: bool = False) -> list:
    out = run([TORCH_PY, REFERENCE, "--beta", "3", "--latent", w["latent"], "--hidden",
               ",".join(map(str, w["hidden"])), "--batch-size", w["batch"], "--epochs", epochs, "--threads", 2,
               *(["--flush-denormal"] if flush_denormal else [])])
    return epoch_seconds_json(out.stdout)


def harness(w: dict, epochs: int, backend: str = "tch") -> tuple:
    """Training and test seconds per epoch of `vaelab train` (the full harness)."""
    with tempfile.TemporaryDirectory() as results:
        run([VAELAB, "--results", results, "--quiet", "train", "--model", "vae", "--beta", "3",
             "--latent", w["latent"], "--hidden", ",".join(map(str, w["hidden"])),
             "--batch-size", w["batch"], "--epochs", epochs, "--backend", backend, "--eval", "off"])
        listing = run([VAELAB, "--results", results, "ls"]).stdout
        run_id = listing.splitlines()[1].split()[0]
        # Seconds per split from the run's per-epoch table (last column).
        show = run([VAELAB, "--results", results, "show", run_id]).stdout
        train = [float(l.split()[-1]) for l in show.splitlines() if re.match(r"\s+\d+\s+train\s", l)]
        test = [float(l.split()[-1]) for l in show.splitlines() if re.match(r"\s+\d+\s+test\s", l)]
        return train, test


def bare(w: dict, epochs: int, backend: str = "tch", members: int = 1, limit: str = "-") -> list:
    """Per-epoch JSON of the bare loop: seconds, and batch/step/optimizer seconds."""
    out = run([BARE, backend, ",".join(map(str, w["hidden"])), w["latent"], w["batch"], epochs, limit, members],
              extra=SPIN)
    return epoch_json(out.stdout)


BETAS = [0.5 * i for i in range(11)]


def beta_matrix(name: str, seeds: list, epochs: int, limit: int | None) -> str:
    """The β sweep at the article's setup: β 0 to 5 by 0.5 for each seed."""
    text = (f'[sweep]\nname = "{name}"\n[base]\nmodel = "vae"\nepochs = {epochs}\n'
            + (f"limit = {limit}\n" if limit else "")
            + f"[grid]\nbeta = {BETAS}\nseed = {seeds}\n")
    return text


def sweep_member_epoch(matrix: str, stack: str, epoch: int = 2) -> float:
    """Seconds per member of epoch `epoch`'s training split through the full harness
    (`vaelab sweep --stack STACK --eval off`: the test-set evaluation after training is not
    what this measures): the sum over runs of their rows' seconds (a stacked member's row
    holds its share of the stack's time) divided by the number of runs."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.toml"
        path.write_text(matrix)
        results = Path(tmp) / "results"
        run([VAELAB, "--results", results, "--quiet", "sweep", path, "--stack", stack, "--eval", "off"])
        ids = [l.split()[0] for l in run([VAELAB, "--results", results, "ls"]).stdout.splitlines()[1:] if l.strip()]
        total = 0.0
        for run_id in ids:
            show = run([VAELAB, "--results", results, "show", run_id]).stdout
            total += sum(float(l.split()[-1]) for l in show.splitlines()
                         if re.match(rf"\s+{epoch}\s+train\s", l))
        return total / len(ids)


def sweep_wall(matrix_path: Path, stack: str) -> float:
    """Wall seconds of a whole `vaelab sweep` (plots and report included), the evaluation after
    each run skipped (`eval_cost` measures it: at k = 1000 it would outweigh one epoch's
    training many times)."""
    with tempfile.TemporaryDirectory() as results:
        t = time.perf_counter()
        run([VAELAB, "--results", results, "--quiet", "sweep", matrix_path, "--stack", stack, "--eval", "off"])
        return time.perf_counter() - t


def alternate(contenders: dict, reps: int, label: str, unit: str = "s/member-epoch") -> dict:
    """Seconds per member-epoch of every contender, `reps` times, the order rotated each
    repetition so that no contender always runs first (side by side on a noisy machine)."""
    times = {k: [] for k in contenders}
    keys = list(contenders)
    for rep in range(reps):
        order = keys[rep % len(keys):] + keys[:rep % len(keys)]
        for k in order:
            s = contenders[k]()
            times[k].append(s)
            print(f"bench: {label} rep {rep + 1}/{reps} {k}: {s:.2f} {unit}", file=sys.stderr)
    return times


def beta_sweep(reps: int) -> dict:
    """The "β sweep" workload: 11 VAE members at the article's setup on all of MNIST, per
    member-epoch, side by side in each repetition; then stack sizes and beta.toml."""
    w = WORKLOADS["article"]
    full = beta_matrix("beta11", [0], 2, None)
    contenders = {
        "pytorch_one": lambda: pytorch(w, 2)[1],
        "pytorch_ftz_one": lambda: pytorch(w, 2, flush_denormal=True)[1],
        "pytorch_stacked_fused": lambda: epoch_seconds_json(
            run([TORCH_PY, STACKED_REFERENCE, "--members", 11, "--epochs", 2]).stdout)[1] / 11,
        "pytorch_stacked_fused_spin": lambda: epoch_seconds_json(
            run([TORCH_PY, STACKED_REFERENCE, "--members", 11, "--epochs", 2], extra=SPIN).stdout)[1] / 11,
        "vaelab_off": lambda: sweep_member_epoch(full, "off"),
        "vaelab_auto": lambda: sweep_member_epoch(full, "auto"),
        "bare_stack_11": lambda: bare(w, 2, members=11)[1]["seconds"] / 11,
    }
    times = alternate(contenders, reps, "beta")
    # Stack sizes through the full harness: 33 members (3 seeds) on 12,000 images, scaled to 60,000.
    scale = IMAGES / 12_000
    sizes = {}
    for size in ["1", "2", "4", "11", "33"]:
        s = sweep_member_epoch(beta_matrix("sizes", [0, 1, 2], 2, 12_000), size) * scale
        sizes[size] = s
        print(f"bench: beta stack size {size}: {s:.2f} s/member-epoch (scaled)", file=sys.stderr)
    # experiments/beta.toml with 1 epoch of its 30, stacked (auto) and not.
    text = (REPO / "experiments/beta.toml").read_text()
    one_epoch = re.sub(r"(?m)^epochs\s*=\s*\d+", "epochs = 1", text)
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "beta1.toml"
        path.write_text(one_epoch)
        listed = [l for l in run([VAELAB, "sweep", path, "--dry-run", "--stack", "off"]).stdout.splitlines()
                  if l.startswith("  ")]
        runs = len(listed)
        variational = sum(1 for l in listed if 'model="ae"' not in l)
        for stack in ["off", "auto"]:
            walls[stack] = sweep_wall(path, stack)
            print(f"bench: beta.toml, 1 epoch, --stack {stack}: {walls[stack]:.0f} s", file=sys.stderr)
    return {
        "reps": reps,
        "seconds_per_member_epoch": {k: median_spread(v) for k, v in times.items()},
        "seconds_per_rep": times,
        "stack_sizes_scaled": sizes,
        "beta_toml_one_epoch_seconds": walls,
        "beta_toml_runs": runs,
        "beta_toml_variational_runs": variational,
        "auto_size": run([VAELAB, "sweep", REPO / "experiments/beta.toml", "--dry-run"]).stdout.split("auto size ")[1].split(")")[0],
    }


def stacked_matrix(name: str, w: dict, epochs: int) -> str:
    """The matrix of a stacked shape: its keys in [base], seeds 0..members-1 in [grid]."""
    base = {"model": "vae", "epochs": epochs, **({"limit": w["limit"]} if w["limit"] else {}), **w["vaelab"]}
    return (f'[sweep]\nname = "bench-{name.replace("_", "-")}"\n[base]\n'
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in base.items())
            + f"[grid]\nseed = {list(range(w['members']))}\n")


def stacked_workload(name: str, reps: int) -> dict:
    """A shape, stacked: vaelab (`vaelab sweep --stack MEMBERS`, full harness) and
    the hand-tuned PyTorch stack (scripts/reference/stacked.py), seconds per member-epoch of the
    second epoch (scaled to 60,000 images under a limit), side by side in each repetition."""
    w = STACKED_WORKLOADS[name]
    m = w["members"]
    scale = IMAGES / w["limit"] if w["limit"] else 1.0
    limit = ["--limit", w["limit"]] if w["limit"] else []
    matrix = stacked_matrix(name, w, 2)
    contenders = {
        "pytorch_stacked": lambda: epoch_seconds_json(
            run([TORCH_PY, STACKED_REFERENCE, "--members", m, "--epochs", 2, "--threads", 2, *limit,
                 *w["pytorch"]]).stdout)[1] / m * scale,
        "vaelab_stacked": lambda: sweep_member_epoch(matrix, str(m)) * scale,
    }
    times = alternate(contenders, reps, name)
    return {
        "what": w["what"],
        "members": m,
        "limit": w["limit"],
        "reps": reps,
        "matrix": matrix,
        "pytorch_args": [str(a) for a in ["--members", m, *limit, *w["pytorch"]]],
        "seconds_per_member_epoch": {k: median_spread(v) for k, v in times.items()},
        "seconds_per_rep": times,
        # The two run back to back within a repetition; their ratio there is less exposed to
        # the machine's drift than the ratio of the medians.
        "ratio_per_rep": [v / p for v, p in zip(times["vaelab_stacked"], times["pytorch_stacked"])],
    }


def gemm_gflops() -> float:
    code = (
        "import torch, time\n"
        "torch.set_num_threads(2)\n"
        "a = torch.randn(2048, 2048); b = torch.randn(2048, 2048)\n"
        "for _ in range(3): a @ b\n"
        "best = 1e9\n"
        "for _ in range(10):\n"
        "    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)\n"
        "print(2 * 2048**3 / best / 1e9)\n"
    )
    return float(run([TORCH_PY, "-c", code]).stdout.strip())


def train_flops_per_epoch(w: dict) -> float:
    enc = [784, *w["hidden"], w["latent"]]
    weights = sum(a * b for a, b in zip(enc, enc[1:])) * 2  # encoder + mirrored decoder
    weights += 2 * w["latent"] * w["latent"]  # mu and log_var heads
    # Forward 2 FLOPs per weight per image; backward twice that.
    return 6.0 * weights * IMAGES


def median_spread(xs: list) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def timed(cmd: list, reps: int) -> dict:
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run([str(c) for c in cmd], capture_output=True, env=env())
        xs.append(time.perf_counter() - t)
    return median_spread(xs)


def peak_rss_mb(cmd: list) -> float:
    out = subprocess.run(["/usr/bin/time", "-v", *map(str, cmd)], capture_output=True, text=True, env=env())
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    return int(m.group(1)) / 1024 if m else float("nan")


EVAL_K = [1, 10, 100, 1000]


def eval_cost(reps: int, gflops: float) -> dict:
    """`vaelab eval --k 1,10,100,1000` of one trained article run (10,000 test images; the
    judge's part included, the judge itself trained beforehand), against its FLOP floor: every
    test image decoded max(k) times for the IWAE bounds (the decoder's 2 FLOPs per weight per
    draw), once for the ELBO and once at the mean, and encoded once."""
    w = WORKLOADS["article"]
    hidden = ",".join(map(str, w["hidden"]))
    with tempfile.TemporaryDirectory() as results:
        run([VAELAB, "--results", results, "--quiet", "train", "--model", "vae", "--beta", "3",
             "--latent", w["latent"], "--hidden", hidden, "--batch-size", w["batch"], "--epochs", 1,
             "--eval", "off"])
        run_id = run([VAELAB, "--results", results, "ls"]).stdout.splitlines()[1].split()[0]
        run([VAELAB, "--results", results, "--quiet", "judge"])
        xs = []
        for _ in range(reps):
            for stale in Path(results, "runs").glob(f"{run_id}*/eval.parquet"):
                stale.unlink()
            t = time.perf_counter()
            run([VAELAB, "--results", results, "--quiet", "eval", run_id, "--k", ",".join(map(str, EVAL_K))])
            xs.append(time.perf_counter() - t)
    enc = [784, *w["hidden"], w["latent"]]
    # The article's layout: the decoder mirrors the encoder, latent→latent heads (another
    # layout, heads on the last hidden layer, would count differently).
    weights = sum(a * b for a, b in zip(enc, enc[1:]))
    heads = 2 * w["latent"] * w["latent"]
    test_images = 10_000
    flop = 2.0 * test_images * (weights * (max(EVAL_K) + 2) + weights + heads)
    return {**median_spread(xs), "k": EVAL_K, "gflop": flop / 1e9, "floor_seconds": flop / (gflops * 1e9)}


# Sweeps of 30, 240 and 1000 small runs (1 epoch on 1000 images, one 64-unit layer, no
# evaluation): latent sizes × β × seeds.
RELAUNCH_SWEEPS = {30: (2, 5, 3), 240: (8, 10, 3), 1000: (10, 20, 5)}


def relaunch_sweeps(reps: int) -> dict:
    """The morning's cost of a finished sweep: relaunching it (nothing to train, nothing to draw
    again) and `vaelab status`, at 30, 240 and 1000 runs; and the first launch for scale."""
    out = {}
    for n, (latents, betas, seeds) in RELAUNCH_SWEEPS.items():
        with tempfile.TemporaryDirectory() as tmp:
            matrix = Path(tmp) / "relaunch.toml"
            matrix.write_text(
                f'[sweep]\nname = "relaunch{n}"\n[base]\nmodel = "vae"\nepochs = 1\nlimit = 1000\n'
                f'hidden = [64]\n[grid]\nlatent = {list(range(2, 2 + 2 * latents, 2))}\n'
                f'beta = {[round(0.25 * (i + 1), 2) for i in range(betas)]}\nseed = {list(range(seeds))}\n'
                f'[eval]\nk = []\n')
            results = Path(tmp) / "results"
            sweep = [VAELAB, "--results", results, "--quiet", "sweep", matrix]
            first = timed(sweep, 1)
            out[str(n)] = {
                "first_launch_seconds": first["median"],
                "noop_relaunch_seconds": timed(sweep, max(reps, 3)),
                "status_seconds": timed([VAELAB, "--results", results, "status", f"relaunch{n}"], max(reps, 3)),
            }
            print(f"relaunch {n} runs: {out[str(n)]}", flush=True)
    return out


def relaunch_markdown(r: dict) -> list:
    out = ["## Relaunching a finished sweep", "", measured(r), "",
           "The morning's cost: a finished sweep relaunched (nothing to train; its tables, "
           "pictures and pages written again only where their inputs changed, so here none) and "
           "`vaelab status`, against the sweep's size (1-epoch runs on 1000 images, 64 hidden units, "
           "no evaluation; `./scripts/bench --workloads relaunch`). Median of the repetitions, with "
           "the first launch (training and drawing everything) for scale.", "",
           "| runs | first launch s | no-op relaunch s | spread | `status` s | target |",
           "|---:|---:|---:|---:|---:|---|"]
    for n, v in r.items():
        if n == "measured":
            continue
        rel, st = v["noop_relaunch_seconds"], v["status_seconds"]
        out.append(f"| {n} | {v['first_launch_seconds']:.1f} | {rel['median']:.2f} | "
                   f"{rel['min']:.2f}–{rel['max']:.2f} | {st['median']:.2f} | < 1 s |")
    return out + [""]


def main() -> None:
    p = argparse.ArgumentParser(description="vaelab benchmarks")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--workloads", default="article,large,beta,article_stacked,large_stacked,pytorch_examples,burda,relaunch",
                   help=f"comma-separated, of: {', '.join([*WORKLOADS, 'beta', *STACKED_WORKLOADS, 'relaunch'])}")
    args = p.parse_args()
    unknown = [w for w in args.workloads.split(",") if w not in [*WORKLOADS, "beta", *STACKED_WORKLOADS, "relaunch"]]
    if unknown:
        sys.exit(f"bench: unknown workload(s) {', '.join(unknown)}")
    for path in (VAELAB, BARE, TORCH_PY, STACKED_REFERENCE):
        if not Path(path).exists():
            sys.exit(f"bench: {path} is missing (./scripts/bench builds and installs it)")

    report = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": 2, "l3": l3_size(),
                          "python": platform.python_version()},
              "reps": args.reps, "workloads": {}}
    # Workloads not measured now keep their last figures (benchmarks.json says when and how).
    previous = REPO / "benchmarks.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        # Figures from before each entry carried its own provenance: the file's machine and reps.
        legacy = {"cpu": old.get("machine", {}).get("cpu", "unknown"), "commit": None, "reps": old.get("reps")}
        tag = lambda v: {**v, "measured": v.get("measured", legacy)}
        wanted = args.workloads.split(",")
        report["workloads"] = {k: tag(v) for k, v in old.get("workloads", {}).items() if k not in wanted}
        for key in ("beta", "relaunch"):
            if key not in wanted and key in old:
                report[key] = tag(old[key])
        kept = {k: tag(v) for k, v in old.get("stacked", {}).items() if k not in wanted}
        if kept:
            report["stacked"] = kept
    gflops = gemm_gflops()
    report["gemm_gflops"] = gflops
    for name in args.workloads.split(","):
        here = {"cpu": report["machine"]["cpu"], "commit": head_commit(), "reps": args.reps}
        if name == "beta":
            report["beta"] = {**beta_sweep(args.reps), "measured": here}
            continue
        if name == "relaunch":
            report["relaunch"] = {**relaunch_sweeps(args.reps), "measured": here}
            continue
        if name in STACKED_WORKLOADS:
            report.setdefault("stacked", {})[name] = {**stacked_workload(name, args.reps), "measured": here}
            continue
        w = WORKLOADS[name]
        phases = []

        def bare_tch():
            epoch = bare(w, 2)[1]
            phases.append(epoch)
            return epoch["seconds"]

        contenders = {
            "pytorch": lambda: pytorch(w, 2)[1],
            "pytorch_ftz": lambda: pytorch(w, 2, flush_denormal=True)[1],
            "vaelab_tch": lambda: harness(w, 2)[0][1],
            "bare_tch": bare_tch,
            "vaelab_flex": lambda: harness(w, 2, "flex")[0][1],
        }
        times = alternate(contenders, args.reps, name, "s/epoch")
        floor = train_flops_per_epoch(w) / (gflops * 1e9)
        report["workloads"][name] = {
            "what": w["what"],
            "measured": here,
            "seconds_per_epoch": {k: median_spread(v) for k, v in times.items()},
            "seconds_per_rep": times,
            # Within a repetition harness and bare loop run minutes apart at most (mostly back to
            # back), so their ratio there is less exposed to the machine's drift than the ratio
            # of the two medians.
            "overhead_per_rep": [h / b - 1 for h, b in zip(times["vaelab_tch"], times["bare_tch"])],
            "floor_seconds": floor,
            "train_gflop_per_epoch": train_flops_per_epoch(w) / 1e9,
            "bare_tch_phases": {k: statistics.median(p[k] for p in phases)
                                for k in ("batch", "step", "optimizer")},
        }

    # Start-up, evaluation time, peak memory.
    report["measured"] = {"cpu": report["machine"]["cpu"], "commit": head_commit(), "reps": None}
    report["help_seconds"] = timed([VAELAB, "--help"], 10)
    _, test = harness(WORKLOADS["article"], 1)
    report["eval_10k_seconds"] = test[0]
    report["eval_cost"] = eval_cost(args.reps, gflops)
    with tempfile.TemporaryDirectory() as results:
        report["train_peak_rss_mb"] = peak_rss_mb([VAELAB, "--results", results, "--quiet", "train", "--epochs", "1"])

    (REPO / "benchmarks.json").write_text(json.dumps(report, indent=2) + "\n")
    (REPO / "BENCHMARKS.md").write_text(markdown(report) + hand_notes())
    print((REPO / "BENCHMARKS.md").read_text())


def beta_markdown(b: dict, eval_cost: dict | None = None) -> list:
    names = {"pytorch_one": "PyTorch 2.9 eager, one run at a time (`scripts/reference/article.py`)",
             "pytorch_ftz_one": "the same + `torch.set_flush_denormal(True)`",
             "pytorch_stacked_fused": "PyTorch stacked (`baddbmm`, `Adam(fused=True)`, `scripts/reference/stacked.py`), 11 members",
             "pytorch_stacked_fused_spin": "the same with `GOMP_SPINCOUNT=20000` (what vaelab sets)",
             "vaelab_off": "vaelab sweep `--stack off` (full harness, every run alone)",
             "vaelab_auto": f"vaelab sweep `--stack auto` (full harness, auto size {b['auto_size']})",
             "bare_stack_11": "vaelab bare loop, 11 members stacked (`examples/bare_loop.rs`)"}
    spe = b["seconds_per_member_epoch"]
    base = spe["pytorch_one"]["median"]
    out = ["## β sweep: 11 VAE members (β 0 to 5 by 0.5), article setup, per member-epoch", "", measured(b), "",
           f"Seconds of training per member and epoch (the second epoch; a stacked member's rows hold its share "
           f"of the stack's time), median of {b['reps']} repetitions, contenders alternating. "
           "`--workloads beta` on its own: `./scripts/bench --workloads beta`.", "",
           "| contender | s/member-epoch (median) | spread | × PyTorch one at a time |", "|---|---:|---:|---:|"]
    for k, v in spe.items():
        out.append(f"| {names[k]} | {v['median']:.2f} | {v['min']:.2f}–{v['max']:.2f} | {v['median'] / base:.2f} |")
    out += ["", "Stack size through the full harness (33 members, 3 seeds × 11 β, on 12,000 images, "
            "scaled to 60,000; one measurement each):", "",
            "| stack size | " + " | ".join(b["stack_sizes_scaled"]) + " |",
            "|---|" + "---:|" * len(b["stack_sizes_scaled"]),
            "| s/member-epoch | " + " | ".join(f"{v:.2f}" for v in b["stack_sizes_scaled"].values()) + " |", ""]
    walls = b["beta_toml_one_epoch_seconds"]
    out += [f"`experiments/beta.toml` ({b['beta_toml_runs']} runs) with 1 epoch of its 30, whole sweep wall time "
            f"(plots and report included, `--eval off`): `--stack off` {walls['off']:.0f} s, `--stack auto` "
            f"{walls['auto']:.0f} s (× {walls['auto'] / walls['off']:.2f}); scaled to 30 epochs ≈ "
            f"{30 * walls['off'] / 3600:.1f} h and {30 * walls['auto'] / 3600:.1f} h of training."]
    if eval_cost and b.get("beta_toml_variational_runs"):
        n = b["beta_toml_variational_runs"]
        ev = n * eval_cost["median"]
        out[-1] += (f" The evaluation after each run (default k = 1, 10, 100, 1000) adds about {n} × "
                    f"{eval_cost['median']:.0f} s ≈ {ev / 3600:.1f} h for its {n} VAEs (one article run's "
                    f"`vaelab eval`, *Start-up, evaluation, memory*), so the night is ≈ "
                    f"{(30 * walls['auto'] + ev) / 3600:.1f} h stacked; `--eval k=1,10,100` cuts the "
                    f"evaluation's decoding tenfold, `--eval off` defers it.")
    out.append("")
    return out


def stacked_markdown(stacked: dict) -> list:
    out = ["## Every shape, stacked: vaelab vs the hand-tuned PyTorch stack, per member-epoch", "",
           "Each shape's members (runs differing only in seed, β 1) trained as one stack, 2 epochs, the second timed: "
           "vaelab through the full harness (`vaelab sweep --stack N --eval off`: the test-set evaluation after "
           "training is not measured) and PyTorch as hand-tuned "
           "(`scripts/reference/stacked.py`: stacked parameters, `baddbmm`, `Adam(fused=True)`, flushed denormals; "
           "dynamic binarisation by `torch.bernoulli` per batch, vaelab's per epoch). Seconds of training per member "
           "and epoch of 60,000 images (scaled from the images trained on, where fewer), median of the repetitions "
           "with the min–max spread, the two alternating. "
           f"On its own: `./scripts/bench --workloads {','.join(stacked)}`.", "",
           "| shape | members | images trained | PyTorch stacked s/member-epoch | spread | vaelab stacked s/member-epoch "
           "| spread | vaelab / PyTorch (medians) | per repetition |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    # One provenance line when every row has the same, else each row says its own.
    one = len({measured(w) for w in stacked.values()}) == 1
    if one:
        out[2:2] = [measured(next(iter(stacked.values()))), ""]
    for w in stacked.values():
        p, v = w["seconds_per_member_epoch"]["pytorch_stacked"], w["seconds_per_member_epoch"]["vaelab_stacked"]
        what = w["what"] if one else f"{w['what']} ({measured(w)[:-1]})"
        out.append(f"| {what} | {w['members']} | {w['limit'] or IMAGES:,} | {p['median']:.2f} | "
                   f"{p['min']:.2f}–{p['max']:.2f} | {v['median']:.2f} | {v['min']:.2f}–{v['max']:.2f} | "
                   f"{v['median'] / p['median']:.2f} | {', '.join(f'{x:.2f}' for x in w['ratio_per_rep'])} |")
    return out + [""]


def head_commit() -> str:
    return run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout.strip()


def measured(x: dict) -> str:
    """Where and how an entry was measured, for its section: "at COMMIT on CPU, --reps N"."""
    m = x.get("measured", {})
    at = f"at {m['commit']} " if m.get("commit") else ""
    reps = f", `--reps {m['reps']}`" if m.get("reps") else ""
    return f"Measured {at}on {m.get('cpu', 'an unrecorded machine')}{reps}."


# The analysis written by hand (roofline, what a change did) follows this line in BENCHMARKS.md;
# a rerun keeps it as it is.
NOTES_MARK = "<!-- Written by hand from here on; ./scripts/bench keeps it. -->"


def hand_notes() -> str:
    """The hand-written part of BENCHMARKS.md, from its mark to the end ("" if none)."""
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    at = text.find(NOTES_MARK)
    return "\n" + text[at:] if at >= 0 else ""


def l3_size() -> str:
    """The L3 cache's size as sysfs gives it (`107520K`), recorded to describe the machine: the
    unified level-3 entry (index numbers vary)."""
    for entry in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (entry / "type").read_text().strip() if (entry / "type").exists() else ""
            if (entry / "level").read_text().strip() == "3" and kind != "Instruction":
                return (entry / "size").read_text().strip()
        except OSError:
            continue
    return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(r: dict) -> str:
    names = {"pytorch": "PyTorch 2.9 eager (`scripts/reference/article.py`)",
             "pytorch_ftz": "PyTorch 2.9 eager + `torch.set_flush_denormal(True)`",
             "vaelab_tch": "vaelab, full harness, tch (Learner, metrics, Parquet, checkpoints)",
             "bare_tch": "vaelab model, bare loop, tch (`examples/bare_loop.rs`)",
             "vaelab_flex": "vaelab, full harness, flex (pure Rust)"}
    out = ["# Benchmarks", "",
           f"Produced by `./scripts/bench`, last on {r['machine']['cpu']} "
           f"({r['machine']['cores']} cores, L3 {r['machine'].get('l3', 'unrecorded')}) with `--reps {r['reps']}`; each section says at which commit, on which "
           "machine and with how many repetitions it was measured (a partial run keeps the other sections). "
           "2 threads everywhere. Seconds per training epoch on all 60,000 "
           "MNIST training images (the second epoch of each process), median over repetitions with the min–max spread; "
           "the contenders alternate order between repetitions. Machine-readable: `benchmarks.json`.", ""]
    for name, w in r["workloads"].items():
        spe = w["seconds_per_epoch"]
        base = spe["pytorch"]["median"]
        out += [f"## {w['what']}", "", measured(w), "",
                "| contender | s/epoch (median) | spread | images/s | × PyTorch |",
                "|---|---:|---:|---:|---:|"]
        for k, v in spe.items():
            out.append(f"| {names[k]} | {v['median']:.2f} | {v['min']:.2f}–{v['max']:.2f} | "
                       f"{IMAGES / v['median']:,.0f} | {v['median'] / base:.2f} |")
        # The rate of the machine that measured this section (kept sections keep theirs).
        rate = w["train_gflop_per_epoch"] / w["floor_seconds"]
        out.append(f"| arithmetic floor ({w['train_gflop_per_epoch']:.1f} GFLOP at {rate:.0f} GFLOP/s, "
                   f"2048² GEMM) | {w['floor_seconds']:.2f} | | {IMAGES / w['floor_seconds']:,.0f} | "
                   f"{w['floor_seconds'] / base:.2f} |")
        overhead = spe["vaelab_tch"]["median"] / spe["bare_tch"]["median"] - 1
        paired = w["overhead_per_rep"]
        ph = w["bare_tch_phases"]
        out += ["", f"Harness overhead over the bare loop (target ≤ +5%): {100 * overhead:+.1f}% from the two medians; "
                f"per repetition (the two run minutes apart at most): median {100 * statistics.median(paired):+.1f}% "
                f"({', '.join(f'{100 * x:+.1f}%' for x in paired)}). "
                f"Full harness vs PyTorch: {spe['vaelab_tch']['median'] / base:.2f}× (target ≤ 1.00×). "
                f"Where the bare loop's epoch goes (median): building batches {ph['batch']:.2f} s, "
                f"forward, loss and backward {ph['step']:.2f} s, optimiser step {ph['optimizer']:.2f} s.", ""]
    if "beta" in r:
        # The evaluation's cost joins the β sweep's night only when measured on the same machine.
        same = r["beta"].get("measured", {}).get("cpu") == r.get("measured", {}).get("cpu")
        out += beta_markdown(r["beta"], r.get("eval_cost") if same else None)
    if r.get("stacked"):
        out += stacked_markdown(r["stacked"])
    if r.get("relaunch"):
        out += relaunch_markdown(r["relaunch"])
    h = r["help_seconds"]
    out += ["## Start-up, evaluation, memory", "", measured(r), "",
            "| what | seconds / MB | target |", "|---|---:|---|",
            f"| `vaelab --help` (median of 10) | {h['median']:.3f} s | < 0.1 s |",
            f"| test split's per-epoch terms, 10,000 images (article model) | {r['eval_10k_seconds']:.2f} s | |",
            f"| peak RSS of `vaelab train --epochs 1` (article setup) | {r['train_peak_rss_mb']:.0f} MB | |", ""]
    if r.get("eval_cost"):
        e = r["eval_cost"]
        ks = ",".join(map(str, e["k"]))
        out += [f"`vaelab eval RUN --k {ks}` of one article run (what `train` and `sweep` do after each "
                f"run unless `--eval off`; median of {e['n']}, {e['min']:.1f}–{e['max']:.1f} s): "
                f"**{e['median']:.1f} s**, against a FLOP floor of {e['floor_seconds']:.1f} s "
                f"({e['gflop']:.0f} GFLOP: every test image decoded {max(e['k'])} times for the "
                f"bounds, at {r['gemm_gflops']:.0f} GFLOP/s), so {e['floor_seconds'] / e['median']:.0%} "
                f"of the GEMM rate. Its cost is the researcher's choice of k: "
                f"`--eval k=1,10,100` decodes a tenth as much.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    main()
