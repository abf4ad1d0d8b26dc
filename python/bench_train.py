"""Training-step benchmark, PyTorch side: the twin of `crates/pretrained-zoo/src/bin/bench.rs`.

For each model (MLP 784-256-10, the LeNet-style CNN), batch size (64, 1024) and optimizer (SGD
with momentum 0.9, Adam) selected by `--only` (all by default) it trains on real MNIST on the
CPU, `warmup` steps untimed and then `steps` timed ones, and reports milliseconds per step; then
it times full passes of shuffled batches of 64 over the training set (the data path alone,
`x[perm[i:i+b]]`).

Plain eager PyTorch as a user writes it: `torch.nn` modules, `F.cross_entropy`,
`torch.optim.SGD/Adam` with their defaults (on the CPU the defaults pick neither `foreach` nor
`fused`: the per-parameter for-loop implementation runs; the report says which one did), and
`zero_grad()` with its default `set_to_none=True`. The loss is read once, after the timed
steps, never inside the loop.

    .cache/torch-venv/bin/python python/bench_train.py --threads 2 > round.json

`cargo xtask bench` runs each row in a fresh process of this script and of the Rust binary,
alternating; see `docs/benchmarks.md`. The result is one JSON object on stdout.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="intra-op threads")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps before the timed ones")
    p.add_argument("--steps", type=int, default=200, help="timed steps")
    p.add_argument("--large-warmup", type=int, default=5, help="untimed steps, LeNet at batch 1024")
    p.add_argument("--large-steps", type=int, default=50, help="timed steps, LeNet at batch 1024")
    p.add_argument("--epochs", type=int, default=5, help="timed passes for the data-path row")
    p.add_argument("--only", default=None,
                   help="only rows whose name (model/batch/optimizer, or data/64) starts with this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=None,
                   help="fixture cache (default: $TRANSFERLAB_CACHE or <repo>/.cache/fixtures)")
    return p.parse_args(argv)


def cache_dir(arg):
    if arg is not None:
        return arg
    env = os.environ.get("TRANSFERLAB_CACHE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".cache" / "fixtures"


def read_idx(path, header):
    raw = path.read_bytes()
    return np.frombuffer(raw, dtype=np.uint8, offset=header)


def load_mnist_train(cache):
    folder = cache / "mnist"
    images = read_idx(folder / "train-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)
    labels = read_idx(folder / "train-labels-idx1-ubyte", 8)
    x = torch.from_numpy(images.copy()).float().div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


class Mlp(nn.Module):
    """Twin of the Rust `Mlp` in bench.rs: flatten, fc1 (784→256), ReLU, head (256→10)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.head = nn.Linear(256, 10)

    def forward(self, x):
        return self.head(F.relu(self.fc1(torch.flatten(x, 1))))


class LeNet(nn.Module):
    """Twin of `pretrained_zoo::arch::lenet::LeNet` with its default configuration."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.head = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.head(x)


def optimizer_impl(opt):
    """Which implementation `opt.step()` runs: the defaults resolve foreach/fused per call."""
    group = opt.param_groups[0]
    if group.get("fused"):
        return "fused"
    if group.get("foreach") is not None:
        return "foreach" if group["foreach"] else "for-loop"
    try:  # the rule torch.optim applies when neither is given (a private helper)
        from torch.optim.optimizer import _default_to_fused_or_foreach
    except ImportError:
        return "default (unknown)"
    _, foreach = _default_to_fused_or_foreach(group["params"], False, False)
    return "foreach" if foreach else "for-loop"


def batches(x, y, batch, generator):
    """Shuffled whole batches of one epoch, `x[perm[i:i+b]]`."""
    n = x.shape[0]
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n - batch + 1, batch):
        idx = perm[i:i + batch]
        yield x[idx], y[idx]


def time_training(x, y, model, batch, optimizer, warmup, steps, seed):
    torch.manual_seed(seed)
    net = Mlp() if model == "mlp" else LeNet()
    net.train()
    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    it = batches(x, y, batch, gen)
    loss = torch.zeros(())
    start = time.perf_counter()
    faults = 0
    for step in range(warmup + steps):
        if step == warmup:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
        try:
            xb, yb = next(it)
        except StopIteration:
            it = batches(x, y, batch, gen)
            xb, yb = next(it)
        opt.zero_grad()
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
    final_loss = loss.item()
    elapsed = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {
        "model": model,
        "batch": batch,
        "optimizer": optimizer,
        "warmup": warmup,
        "steps": steps,
        "ms_per_step": 1e3 * elapsed / max(steps, 1),
        "faults_per_step": faults / max(steps, 1),
        "final_loss": final_loss,
    }, optimizer_impl(opt)


def time_data_path(x, y, batch, epochs, seed):
    """Median time of a full pass of shuffled batches (after one untimed pass), last one partial."""
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    times, count = [], 0
    for e in range(epochs + 1):
        start = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        count = 0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            count += 1
        if e > 0:
            times.append(1e3 * (time.perf_counter() - start))
    return {
        "batch": batch,
        "batches_per_epoch": count,
        "epochs": epochs,
        "ms_per_epoch": statistics.median(times),
    }


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    x, y = load_mnist_train(cache_dir(args.cache))

    def wanted(name):
        return args.only is None or name.startswith(args.only)

    rows, impls = [], set()
    for model in ("mlp", "lenet"):
        for batch in (64, 1024):
            for optimizer in ("sgd", "adam"):
                if not wanted(f"{model}/{batch}/{optimizer}"):
                    continue
                large = model == "lenet" and batch == 1024
                warmup = args.large_warmup if large else args.warmup
                steps = args.large_steps if large else args.steps
                row, impl = time_training(x, y, model, batch, optimizer, warmup, steps, args.seed)
                rows.append(row)
                impls.add(impl)
    data = time_data_path(x, y, 64, args.epochs, args.seed) if wanted("data/64") else None
    report = {
        "side": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # `cargo xtask bench --tune-python-malloc` sets these (see core_tensor::alloc).
        "malloc_tuned": os.environ.get("MALLOC_MMAP_MAX_") == "0",
        "optimizer_impl": "torch.optim defaults: " + (", ".join(sorted(impls)) or "n/a"),
        "rows": rows,
        "data": data,
        "cpu_seconds": sum(os.times()[:2]),
    }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
