"""What bounds the per-check speed-up over torch's slow gradcheck: the size of the input.

    python benchmarks/softmax_bound.py

In ``peers.py``'s table SoftmaxWithLoss is at about 11-15x where the other layers are at 36-138x.
Torch's slow gradcheck perturbs every input entry (two forward calls per entry); gradprop's check
costs the same few calls whatever the size (backward against ``jax.vjp``, and one random
projection of the central difference). So the ratio is roughly

    (2 * entries + 2) * (one forward call) / (one gradprop check)

and grows with the input: SoftmaxWithLoss's main case, x (8, 10), has 80 entries and a forward of
a few microseconds; Relu's has 160, MulLayer's 320, Convolution's 384 and a slower forward. This
script times one check of SoftmaxWithLoss by both, on batches of 8 to 128 (10 classes, one-hot
labels), with one forward call alone beside them, so the bound can be read in numbers. Same
methods and timing as ``peers.py`` (warm: after a check on the same shapes). Prints a Markdown
table; nothing is asserted.
"""
from __future__ import annotations

import sys
import time

import numpy as np

import peers
from cases import BenchCase, Runner, _one_hot, resolve
from machine import describe, machine

import gradprop.layers as layers

SIZES = (8, 16, 32, 64, 128)


def case(n: int, seed: int) -> BenchCase:
    rng = np.random.default_rng([seed, n])
    return BenchCase({}, {"x": rng.uniform(-2, 2, (n, 10)), "t": _one_hot(rng, n, 10)}, int(rng.integers(0, 2**31)))


def main() -> int:
    item = "SoftmaxWithLoss"
    namespace = peers.counted(vars(layers), item)
    print(f"Machine: {describe(machine())}.\n")
    print("| x | entries | forward µs | gradprop ms (forward calls) | torch slow ms (forward calls) | slow / gradprop |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in SIZES:
        cases = [case(n, seed) for seed in range(1 + peers.MAX_REPEATS)]
        runner = Runner(resolve(namespace, item), item, cases[0])
        douts = [Runner(resolve(namespace, item), item, c).dout() for c in cases]
        row = {}
        for method in ("gradprop", "torch_slow"):
            one = lambda i, m=method: peers.peer_check(m, namespace, item, cases[i], douts[i])  # noqa: E731
            one(0)  # warm-up on these shapes
            row[method] = (peers.median_ms(lambda i: one(1 + i)), peers.count_calls(lambda: one(0)))
        layer = resolve(vars(layers), item)()
        start, k = time.perf_counter(), 200
        for _ in range(k):
            layer.forward(runner.case.inputs["x"], runner.case.inputs["t"])
        forward_us = 1e6 * (time.perf_counter() - start) / k
        (g_ms, g_calls), (t_ms, t_calls) = row["gradprop"], row["torch_slow"]
        print(f"| ({n}, 10) | {n * 10} | {forward_us:.1f} | {g_ms:.2f} ({g_calls}) | {t_ms:.2f} ({t_calls}) | "
              f"{t_ms / g_ms:.0f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
