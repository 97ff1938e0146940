"""Board builds next to the time per image: utilisation and Fmax from `onespike build`
(build.json), cycles per image measured on the accelerator in the Amaranth simulator, and
the microseconds per image at the board's clock and at the achieved Fmax.

Run: .venv/bin/python bench/boards_table.py BUILD_DIR... [--inputs X.npy] [--samples N]
     .venv/bin/python bench/boards_table.py --mnist     (trains the MNIST 784-128-10 MLP,
        builds it for icebreaker at 4 lanes and ulx3s-85f at 4 and 8, then measures)
     .venv/bin/python bench/boards_table.py --fit [--boards B...] [--seeds N]
        (synthesis only: the fit planner's block RAM / LUT RAM / SPRAM / LUT prediction
        next to yosys' stat, for random networks on every board)

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
        if mismatch is not None:
            raise SystemExit(f"the accelerator differs from the golden model: {mismatch}")
    if not (stream.trace.classes == golden.classes).all():
        raise SystemExit("the accelerator's classes differ from the golden model's")
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
    for name, lanes in (("icebreaker", 4), ("ulx3s-85f", 4), ("ulx3s-85f", 8)):
        folder = root / f"board-{name}-p{lanes}"
        if not (folder / "build.json").is_file():
            build(net_path, board_named(name), folder, lanes=lanes)
        out.append(folder)
    return out


def fit_table(boards, seeds, lanes_list):
    """Prediction vs yosys stat (synthesis only), one row per network, board and lanes."""
    from onespike.boards.build import synthesize
    from onespike.boards.platforms import board_named
    from onespike.errors import OnespikeError
    from onespike.sim import random_network

    print(f"{'board':<13} {'net':<22} {'lanes':<14} {'BRAM':>9} {'LUTRAM':>9} "
          f"{'SPRAM':>7} {'LUT est/stat':>13}")
    for seed in range(seeds):
        net = random_network(np.random.default_rng(seed), conv=seed % 2 == 1, max_layers=4,
                             max_width=64)
        shape = "-".join(str(int(np.prod(l.out_shape))) for l in net.layers)
        for name in boards:
            for lanes in lanes_list:
                try:
                    r = synthesize(net, board_named(name), Path(f"build/bench/fit/{name}"),
                                   lanes=lanes, log=lambda line: None)
                except OnespikeError as e:
                    print(f"{name:<13} {shape:<22} {str(lanes):<14} refused: {e}")
                    continue
                f, st = r["fit"], r["stat"]
                print(f"{name:<13} {shape:<22} {str(list(f.lanes)):<14} "
                      f"{f.plan.blocks:>4}/{st['block']:<4} {f.plan.lutram:>4}/"
                      f"{st['distributed']:<4} {f.plan.sprams:>3}/{st['spram']:<3} "
                      f"{f.luts:>6}/{st['luts']:<6}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builds", nargs="*", type=Path)
    parser.add_argument("--mnist", action="store_true",
                        help="build the MNIST MLP for the iCEBreaker and the ULX3S-85F first")
    parser.add_argument("--inputs", help="float inputs (.npy); default: random activations")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--fit", action="store_true",
                        help="prediction vs yosys stat for random networks (synthesis only)")
    parser.add_argument("--boards", nargs="*",
                        default=["icebreaker", "ulx3s-12f", "tang-nano-9k"])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    if args.fit:
        fit_table(args.boards, args.seeds, [1, 4, None])
        return
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
                              size=(args.samples,) + tuple(net.encoder.sample_shape))
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
