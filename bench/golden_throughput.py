"""Golden-model throughput (samples/s) on the MNIST 784-128-10 MLP: closed form and events.

Run: .venv/bin/python bench/golden_throughput.py [--data DIR] [--samples N]
"""

import argparse
import sys
import time

import numpy as np
import torch

from onespike import zoo
from onespike.mapper import convert
from onespike.sim import closed_form, event_sim


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=None, help="folder holding mnist/ (IDX .gz files)")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = zoo.idx_dataset("mnist", args.data)
    model = zoo.train(zoo.mlp([784, 128, 10]), data, epochs=4, batch=128, lr=1e-3)
    net = convert(model, data.x_train)
    a0 = net.encoder.encode(data.x_test[: args.samples])
    print(f"command: {' '.join([sys.executable.rsplit('/', 1)[-1]] + sys.argv)}")
    print(f"MNIST 784-128-10 MLP, act_bits 4, weight_bits 8, {len(a0)} test images, "
          f"batch {args.batch}, numpy {np.__version__}")
    for name, run in (("closed form", closed_form), ("event simulation", event_sim)):
        start = time.perf_counter()
        for i in range(0, len(a0), args.batch):
            run(net, a0[i:i + args.batch])
        elapsed = time.perf_counter() - start
        print(f"  {name:<17} {len(a0) / elapsed:10.0f} samples/s  ({elapsed:.2f} s)")


if __name__ == "__main__":
    main()
