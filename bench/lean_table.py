"""The lean neuron core (issue 12): cycles per image of the bench networks at P lanes,
measured in the Amaranth simulator, next to the cycle model and the event lower bound, and
the numbers measured on the old core before the change.

Run: .venv/bin/python bench/lean_table.py [--nets mlp cnn fashion] [--lanes 8] [--samples 5]
     [--firing sweep auto]

Each network is measured with every ``--firing`` of hdl.top.Accelerator (sweep: every
state word tested in every step; auto: sorted firing where it pays, hdl/firing.py), so the
rows of one run put the two side by side. ``--balanced`` adds a row per network with the
same lane budget (the sum of the per-layer lanes of ``--lanes P``) spent where the work is
(hdl.plan.balance_lanes, on the golden activity of 16 other test images, 100-115).

Networks (trained once, cached in build/bench/): ``mlp`` MNIST 784-128-10; ``cnn`` the MNIST
CNN of bench/conv_table.py (zoo.mnist_cnn); ``fashion`` conv5x5(8), maxpool2, conv5x5(16),
maxpool2, 256-64-10 on Fashion-MNIST; act_bits 4, weight_bits 8, 1 epoch.

steady: mean cycles between classes back to back (samples 2..N); model: hdl/cycles.py on the
spike maps of those samples (err% = model/steady - 1); before: steady on the old core
(commit 42d03d6, same networks, samples and simulator); bound: sum over synaptic layers of
ceil(C_out/P)*(input spikes + steps), the issue's bound (C_out = neurons of a dense layer,
output channels of a conv); event: sum over layers of (cycles the input spikes' synapse
words take + steps), and evmax: its largest layer term, the least a pipelined layer
chain can take per image at P lanes.
"""

import argparse
import sys

import numpy as np

from lean_nets import bench_net
from onespike.hdl.cycles import cycle_estimate, integration_cycles
from onespike.hdl.maxpool import MaxPoolSizes
from onespike.sim.hardware import run
from onespike.hdl.top import Accelerator
from onespike.hdl.plan import balance_lanes, layer_lanes
from onespike.sim import closed_form, first_mismatch

# cycles between classes 1-2, 2-3, ... measured at commit 42d03d6 (the old core) on the same
# networks and test images at 8 lanes in the Amaranth simulator (hdl/simulate.run)
BEFORE = {"mlp": [2823, 1221, 3315, 2136, 1460], "cnn": [25200, 26103, 24180, 24637, 25317],
          "fashion": [32187, 40155, 43932, 36658, 40983]}
# ULX3S-85F, MNIST MLP (build/bench/mnist_mlp.npz), 8 lanes, `onespike build` (yowasp)
BOARD = {"before (42d03d6)": dict(luts=3830, ffs=1044, bram=68, dsp=0, fmax=61.06),
         "after (1587698)": dict(luts=2048, ffs=1914, bram=68, dsp=24, fmax=65.27)}
# LUT4 of the same board design by lanes, yosys only (no place and route): before / after
LUT4_BY_LANES = {1: (2733, 1733), 2: (3087, 2061), 4: (3127, 1835), 8: (3830, 2048),
                 16: (4705, 1795)}


def bounds(net, top, maps):
    dense, event = 0.0, []
    for n, (layer, core) in enumerate(zip(net.layers, top.cores)):
        if isinstance(core, MaxPoolSizes):
            continue
        count = float((maps[n].reshape(len(maps[n]), -1) != 0).sum(1).mean())
        dense += -(-layer.weight.shape[0] // core.lanes) * (count + net.in_levels(n))
        event.append(integration_cycles(core, maps[n]) + net.in_levels(n))
    return dense, event


def balanced(name, lanes):
    """The same lane budget as ``lanes`` everywhere, spent where the work is."""
    net, x = bench_net(name)
    activity = closed_form(net, net.encoder.encode(x[100:116])).activations
    return balance_lanes(net, sum(layer_lanes(net, lanes)),
                         [np.asarray(a) for a in activity[:len(net.layers)]])


def measure(name, lanes, samples, firing):
    net, x = bench_net(name)
    a0 = net.encoder.encode(x[:samples])
    golden = closed_form(net, a0)
    top = Accelerator(net, lanes=lanes, firing=firing)
    hw = run(top, a0)
    assert first_mismatch(net, golden, hw.trace) is None, "RTL differs from the golden model"
    done = np.diff(np.array(hw.sample_done))
    maps = [a[1:] for a in golden.activations[:len(net.layers)]]
    model = cycle_estimate(top, maps)
    dense, event = bounds(net, top, maps)
    return {"steady": float(done.mean()), "latency": hw.sample_done[0], "model": model,
            "bound": dense, "event": event}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", default=["mlp", "cnn", "fashion"])
    parser.add_argument("--lanes", type=int, nargs="+", default=[8])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--firing", nargs="+", default=["sweep", "auto"],
                        choices=["sweep", "sorted", "auto"])
    parser.add_argument("--balanced", action="store_true",
                        help="also the same lane budget spent where the work is (auto firing)")
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"{'net':<8} {'lanes':>5} {'firing':>6} {'steady':>7} {'model':>6} {'err%':>5} {'before':>7} "
          f"{'gain':>5} {'bound':>7} {'event':>6} {'evmax':>6} {'latency':>8}  "
          f"slowest (model)")
    for name in args.nets:
        runs = [(p, f) for p in args.lanes for f in args.firing]
        if args.balanced:
            runs += [(balanced(name, p), "auto") for p in args.lanes]
        for lanes, firing in runs:
            r = measure(name, lanes, args.samples, firing)
            model = r["model"]
            parts = {**model["stages"], **model["chains"]}
            slowest = max(parts, key=parts.get)
            old = BEFORE.get(name) if lanes == 8 or firing == "auto" and isinstance(
                lanes, list) and 8 in args.lanes else None
            before = round(float(np.mean(old[:args.samples - 1]))) \
                if old and args.samples - 1 <= len(old) else None
            gain = f"{before / r['steady']:.2f}" if before else "-"
            shown = "/".join(map(str, lanes)) if isinstance(lanes, list) else str(lanes)
            print(f"{name:<8} {shown:>5} {firing:>6} {r['steady']:>7.0f} {model['steady']:>6} "
                  f"{100 * (model['steady'] / r['steady'] - 1):>+5.1f} "
                  f"{before or '-':>7} {gain:>5} {r['bound']:>7.0f} {sum(r['event']):>6.0f} "
                  f"{max(r['event']):>6.0f} {r['latency']:>8}  {slowest}")
    print("board (ULX3S-85F, MNIST MLP, 8 lanes):")
    for label, b in BOARD.items():
        print(f"  {label}: {b['luts']} LUT4, {b['ffs']} FF, {b['bram']} DP16KD, {b['dsp']} DSP, "
              f"Fmax {b['fmax']} MHz")
    print("LUT4 by lanes (before -> after): " + ", ".join(
        f"{p}: {b} -> {a}" for p, (b, a) in LUT4_BY_LANES.items()))


if __name__ == "__main__":
    main()
