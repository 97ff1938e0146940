"""Simulation speed of the regression: Icarus and Verilator (cocotb) vs Amaranth's simulator.

Run: .venv/bin/python bench/verify_speed.py [--samples N] [--lanes P] [--mnist]

Same network, same samples, every layer compared with the golden model in each run;
samples/s counts the simulation only (Verilator's C++ build is reported separately).
"""

import argparse
import sys
import tempfile
import time

import torch

from onespike import zoo
from onespike.sim.hardware import run
from onespike.hdl.top import Accelerator
from onespike.mapper import convert
from onespike.sim import closed_form, first_mismatch
from onespike.sim.verify import SIMULATORS, verify


def measure(name, net, a0, lanes, build_root):
    print(f"{name}: {len(a0)} samples, lanes {lanes}")
    print(f"{'simulator':>10} {'build s':>8} {'run s':>7} {'samples/s':>10} {'cycles/sample':>14} "
          f"{'mismatches':>10}")
    for simulator in SIMULATORS:
        r = verify(net, a0, lanes=lanes, simulator=simulator, build_root=build_root,
                   idle=0.0, backpressure=0.0, progress=False)
        print(f"{simulator:>10} {r['build_seconds']:>8.1f} {r['run_seconds']:>7.1f} "
              f"{r['samples_per_second']:>10.1f} {r['cycles_per_inference']:>14.0f} "
              f"{r['mismatches']:>10}")
    start = time.perf_counter()
    hw = run(Accelerator(net, lanes=lanes), a0)
    seconds = time.perf_counter() - start
    bad = 0 if first_mismatch(net, closed_form(net, a0), hw.trace) is None else 1
    print(f"{'amaranth':>10} {0:>8.1f} {seconds:>7.1f} {len(a0) / seconds:>10.1f} "
          f"{'':>14} {bad:>10}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--mnist", action="store_true", help="also the MNIST 784-128-10 MLP")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"command: python {' '.join(sys.argv)}")
    build_root = tempfile.mkdtemp(prefix="onespike-bench-")
    data = zoo.digits()
    net = convert(zoo.train(zoo.mlp([64, 64, 10]), data), data.x_train)
    measure("digits 64-64-10 MLP", net, net.encoder.encode(data.x_test[:args.samples]),
            args.lanes, build_root)
    if args.mnist:
        mnist = zoo.idx_dataset("mnist")
        big = convert(zoo.train(zoo.mlp([784, 128, 10]), mnist, epochs=1, batch=128, lr=1e-3),
                      mnist.x_train[:5000])
        measure("MNIST 784-128-10 MLP", big, big.encoder.encode(mnist.x_test[:args.samples]),
                16, build_root)


if __name__ == "__main__":
    main()
