"""Board builds next to the time per image: utilisation and Fmax from `onespike build`
(build.json), cycles per image measured on the accelerator in the Amaranth simulator, and
the microseconds per image at the board's clock and at the achieved Fmax.

Run: .venv/bin/python bench/boards_table.py BUILD_DIR... [--inputs X.npy] [--samples N]
     .venv/bin/python bench/boards_table.py --mnist     (trains the MNIST 784-128-10 MLP,
        builds it for icebreaker at 2 lanes and ulx3s-85f at 4 and 8, then measures)

Each BUILD_DIR is a folder written by `onespike build` (it holds network.npz and build.json).
The cycles are those of the accelerator alone, one image at a time (latency) and back to back
(steady); the UART adds about 10 bits per input byte (784 bytes at 1 Mbaud: 7.8 ms).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from onespike.sim.hardware import run
from onespike.hdl.top import Accelerator
from onespike.ir import load
from onespike.sim import closed_form, first_mismatch


def cycles(net, lanes, a0):
    """(latency of one image alone, steady spacing back to back), measured."""
    golden = closed_form(net, a0)
    alone = run(Accelerator(net, lanes=lanes), a0[:1])
    stream = run(Accelerator(net, lanes=lanes), a0)
    for hw, count in ((alone, 1), (stream, len(a0))):
        mismatch = first_mismatch(net, closed_form(net, a0[:count]), hw.trace)
        assert mismatch is None, mismatch
    assert (stream.trace.classes == golden.classes).all()
    steady = np.diff(stream.sample_done).mean() if len(a0) > 1 else alone.cycles
    return alone.cycles, float(steady)


def mnist_builds():
    from onespike import zoo
    from onespike.boards.build import build
    from onespike.boards.platforms import board_named
    from onespike.ir import save
    from onespike.mapper import convert

    root = Path("build/bench")
    net_path = root / "mnist_mlp.npz"
    if not net_path.is_file():
        mnist = zoo.idx_dataset("mnist")
        model = zoo.train(zoo.mlp([784, 128, 10]), mnist, epochs=1, batch=128, lr=1e-3)
        save(convert(model, mnist.x_train[:5000]), net_path)
        np.save(root / "mnist_test_x.npy", mnist.x_test[:200])
    out = []
    for name, lanes in (("icebreaker", 2), ("ulx3s-85f", 4), ("ulx3s-85f", 8)):
        folder = root / f"board-{name}-p{lanes}"
        if not (folder / "build.json").is_file():
            build(net_path, board_named(name), folder, lanes=lanes)
        out.append(folder)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builds", nargs="*", type=Path)
    parser.add_argument("--mnist", action="store_true",
                        help="build the MNIST MLP for the iCEBreaker and the ULX3S-85F first")
    parser.add_argument("--inputs", help="float inputs (.npy); default: random activations")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    if args.mnist:
        args.builds += mnist_builds()
        args.inputs = args.inputs or "build/bench/mnist_test_x.npy"
    header = (f"{'board':<12} {'lanes':>5} {'LUT4':>6} {'FF':>6} {'BRAM':>5} {'SPRAM':>5} "
              f"{'clock':>6} {'Fmax':>6} {'latency':>8} {'steady':>7} {'us@clk':>7} "
              f"{'us@Fmax':>7}")
    rows = []
    for build in args.builds:
        report = json.loads((build / "build.json").read_text())
        net = load(build / "network.npz")
        if args.inputs:
            a0 = net.encoder.encode(np.load(args.inputs)[:args.samples])
        else:
            rng = np.random.default_rng(0)
            a0 = rng.integers(0, net.encoder.levels + 1,
                              size=(args.samples,) + tuple(net.encoder.shape))
        latency, steady = cycles(net, report["lanes"], a0)
        rows.append(f"{report['board']:<12} {report['lanes'][0]:>5} {report['luts']:>6} "
                    f"{report['ffs']:>6} {report['bram']:>5} {report['spram']:>5} "
                    f"{report['clock_mhz']:>6g} {report['fmax_mhz']:>6.1f} {latency:>8} "
                    f"{steady:>7.0f} {latency / report['clock_mhz']:>7.1f} "
                    f"{latency / report['fmax_mhz']:>7.1f}")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
