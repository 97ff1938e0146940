"""The board planner's wall time (``boards.fit.fit``, no tool runs) on the bench
architectures and every board of the issue, refusals included.

The networks are the bench architectures (bench/models.py, the 784-512-256-10 MLP a new
user tries) with untrained weights, converted on random calibration inputs: the planner's
time and answers depend on the shapes and the weight bits, not on training, so this runs
without the data sets.

Run: .venv/bin/python bench/planner_time.py [--nets NAME...] [--boards NAME...]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def architectures():
    import torch.nn as nn
    from onespike import zoo

    sys.path.insert(0, str(Path(__file__).parent))
    from lean_nets import fashion_cnn
    return {"mnist-mlp": (lambda: zoo.mlp([784, 128, 10]), (784,)),
            "mlp-512": (lambda: zoo.mlp([784, 512, 256, 10]), (784,)),
            "mnist-cnn": (zoo.mnist_cnn, (1, 28, 28)),
            "fashion-cnn": (fashion_cnn, (1, 28, 28))}


def network(name, weight_bits=8):
    import torch
    from onespike.mapper import convert

    make, shape = architectures()[name]
    torch.manual_seed(0)
    model = make()
    calib = np.random.default_rng(0).random((256, *shape), dtype=np.float32)
    model.train()
    with torch.no_grad():               # BatchNorm statistics of the calibration inputs
        model(torch.as_tensor(calib))
    return convert(model.eval(), calib, weight_bits=weight_bits)


def main(argv=None):
    from onespike.boards.build import fit
    from onespike.boards.platforms import board_named
    from onespike.errors import OnespikeError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(architectures()))
    parser.add_argument("--boards", nargs="+",
                        default=["icebreaker", "ulx3s-85f", "tang-nano-9k"])
    args = parser.parse_args(argv)
    print(f"| network | board | seconds | answer |\n|---|---|---|---|")
    for name in args.nets:
        net = network(name)
        for board in args.boards:
            started = time.perf_counter()
            try:
                placed = fit(net, board_named(board))
                answer = f"{list(placed.lanes)}: {placed.reason}"
            except OnespikeError as e:
                answer = f"refused: {e}"
            seconds = time.perf_counter() - started
            print(f"| {name} | {board} | {seconds:.1f} | {answer} |", flush=True)


if __name__ == "__main__":
    main()
