"""Accelerator cycles (Amaranth simulator) next to the event lower bound, and generation time.

Run: .venv/bin/python bench/hdl_cycles.py [--lanes P ...] [--samples N] [--mnist]

Per layer the lower bound is groups · (input spikes + time steps of its input window), with
groups = ceil(neurons / lanes): every input spike adds a row of groups words (issue 12's
bound; the core now pays one cycle per step, not groups). The model replays each sample's
spikes through the stream handshakes (hdl/cycles.py).
"""

import argparse
import sys
import time

import numpy as np
import torch

from onespike import zoo
from onespike.hdl.cycles import cycle_estimate
from onespike.hdl.generate import generate
from onespike.sim.hardware import run
from onespike.hdl.top import Accelerator
from onespike.mapper import convert
from onespike.sim import closed_form, first_mismatch


def stream_spikes(net, trace):
    """Spikes per sample on the stream into each layer."""
    return [(a.reshape(len(trace.logits), -1) > 0).sum(axis=1)
            for a in trace.activations[:len(net.layers)]]


def lower_bound(net, spikes, lanes):
    return sum(-(-layer.weight.shape[0] // lanes[n]) * (spikes[n] + net.in_levels(n))
               for n, layer in enumerate(net.layers))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 8, 16, 64])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--mnist", action="store_true", help="also time generation of the "
                        "MNIST 784-128-10 MLP")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"command: python {' '.join(sys.argv)}")
    data = zoo.digits()
    model = zoo.train(zoo.mlp([64, 64, 10]), data)
    net = convert(model, data.x_train)
    a0 = net.encoder.encode(data.x_test[: args.samples])
    golden = closed_form(net, a0)
    print(f"digits 64-64-10 MLP, act_bits 4, {len(a0)} back-to-back test images")
    print("latency: cycles from the first input to the first class; steady: cycles between "
          "classes; model: hdl/cycles.py replaying these samples' spikes; bound: sum over layers "
          "of groups*(input spikes + steps)")
    print(f"{'lanes':>5} {'latency':>8} {'model':>6} {'steady':>7} {'model':>6} "
          f"{'bound':>6} {'slowest stage (model)':>24} {'mismatches':>10}")
    spikes = stream_spikes(net, golden)
    maps = [a[1:] for a in golden.activations[:len(net.layers)]]
    for lanes in args.lanes:
        top = Accelerator(net, lanes=lanes)
        hw = run(top, a0)
        model = cycle_estimate(top, maps)
        bound = lower_bound(net, spikes, top.lanes)
        done = np.array(hw.sample_done)
        steady = np.diff(done).mean() if len(done) > 1 else float("nan")
        bad = 0 if first_mismatch(net, golden, hw.trace) is None else 1
        parts = {**model["stages"], **model["chains"]}
        slowest = max(parts, key=parts.get)
        print(f"{lanes:>5} {done[0]:>8} {model['latency']:>6} {steady:>7.0f} "
              f"{model['steady']:>6} {bound.mean():>6.0f} {slowest:>24} {bad:>10}")
    if args.mnist:
        mnist = zoo.idx_dataset("mnist")
        big = zoo.train(zoo.mlp([784, 128, 10]), mnist, epochs=1, batch=128, lr=1e-3)
        mnet = convert(big, mnist.x_train[:5000])
        for lanes in (1, 16):
            start = time.perf_counter()
            generate(mnet, f"build/bench/mnist_p{lanes}", lanes=lanes)
            print(f"MNIST 784-128-10 generate --lanes {lanes}: "
                  f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
