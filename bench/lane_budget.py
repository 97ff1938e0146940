"""``--lanes P`` as a budget (hdl.plan.spend_lanes) against ``P`` in every layer, in one run:
cycles per sample back to back measured in the Amaranth simulator on random inputs, each run
checked spike for spike against the golden model, on random networks of every layer kind
(none of them tuned for) and, with ``--fashion``, the bench Fashion-MNIST CNN on test images.

Run: .venv/bin/python bench/lane_budget.py [--seeds 12] [--lanes 4] [--samples 4] [--width 24]
     [--fashion]

steady: mean cycles between classes (samples 2..N); gain: uniform / spent (above 1: the
budget spent by work is faster). A network where the model finds no faster spending keeps
P everywhere (how: uniform) and shows gain 1.00.
"""

import argparse
import sys

import numpy as np

from onespike.hdl.top import Accelerator
from onespike.hdl.plan import layer_lanes, spend_lanes
from onespike.sim import closed_form, first_mismatch, random_inputs, random_network
from onespike.sim.hardware import run


def steady(net, lanes, a0):
    """Mean cycles between classes, after checking every spike against the golden model."""
    hw = run(Accelerator(net, lanes=lanes), a0, max_cycles=2_000_000)
    assert first_mismatch(net, closed_form(net, a0), hw.trace) is None, \
        f"RTL differs from the golden model at lanes {lanes}"
    return float(np.diff(np.array(hw.sample_done)).mean())


def row(name, net, budget, a0):
    uniform = layer_lanes(net, budget)
    spent, how, _ = spend_lanes(net, budget)
    before = steady(net, uniform, a0)
    after = before if spent == uniform else steady(net, spent, a0)
    print(f"{name:<12} {'/'.join(map(str, uniform)):>16} {before:>9.0f} "
          f"{'/'.join(map(str, spent)):>16} {after:>9.0f} {before / after:>5.2f}  {how}",
          flush=True)
    return before / after


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--width", type=int, default=24, help="random networks' widest layer")
    parser.add_argument("--fashion", action="store_true")
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"{'network':<12} {'uniform lanes':>16} {'steady':>9} {'spent lanes':>16} "
          f"{'steady':>9} {'gain':>5}  how")
    gains = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        net = random_network(rng, conv=seed % 2 == 1, max_width=args.width)
        largest = max(getattr(layer, "weight", np.zeros(1)).shape[0] for layer in net.layers)
        gains.append(row(f"random {seed}", net, min(args.lanes, largest),
                         random_inputs(rng, net, args.samples)))
    print(f"random networks: gain geometric mean {np.exp(np.mean(np.log(gains))):.2f}, "
          f"min {min(gains):.2f}, max {max(gains):.2f}")
    if args.fashion:
        sys.path.insert(0, "bench")
        from lean_nets import bench_net
        net, x = bench_net("fashion")
        row("fashion CNN", net, args.lanes, net.encoder.encode(x[:args.samples]))


if __name__ == "__main__":
    main()
