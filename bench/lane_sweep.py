"""Lane sweep of one network on one board: LUT4, FF, block RAM, DSP and Fmax of the bare
accelerator (bench/compare.py's flow: an LFSR harness, memories where the board's memory
plan puts them, yowasp yosys and nextpnr), cycles per image measured in Amaranth's
simulator (each image checked exactly against the golden model) and the cycle model's
estimate, then the LUT4 and FF per lane by least squares.

Run: ONESPIKE_DATA=/work/shared/data .venv/bin/python bench/lane_sweep.py
         [--net mnist] [--board ulx3s-85f] [--lanes 1 2 4 8 16] [--samples 4]
(the MNIST 784-128-10 MLP takes about 4 minutes a lane count on one core)
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from compare import ROOT, build, cycles, nets  # noqa: E402

from onespike.boards.platforms import board_named  # noqa: E402
from onespike.hdl.cycles import cycle_estimate  # noqa: E402
from onespike.hdl.plan import AcceleratorPlan  # noqa: E402
from onespike.ir import load  # noqa: E402
from onespike.sim import closed_form  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default="mnist", help="a network of bench/compare.py")
    parser.add_argument("--board", default="ulx3s-85f")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--samples", type=int, default=4, help="test images simulated")
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    path, x = nets()[args.net]
    net, board = load(path), board_named(args.board)
    a0 = net.encoder.encode(x[:args.samples])
    maps = None
    rows = []
    header = (f"{'lanes':>5} {'LUT4':>6} {'FF':>6} {'BRAM':>5} {'DSP':>4} {'Fmax':>6} "
              f"{'steady':>7} {'model':>7} {'us/img':>7} {'LUT4*us':>9}")
    print(header, flush=True)
    for lanes in args.lanes:
        s = build(net, board, lanes, "ttfs", ROOT / f"{args.net}-{args.board}-p{lanes}-ttfs-bare")
        _, steady = cycles(net, lanes, "ttfs", a0)
        if maps is None:      # every stream's spike maps, first image out (steady spacing)
            maps = [a[1:] for a in closed_form(net, a0).activations[:len(net.layers)]]
        model = cycle_estimate(AcceleratorPlan(net, lanes=lanes), maps)["steady"]
        us = steady / s["fmax_mhz"]
        rows.append((lanes, s["luts"], s["ffs"]))
        print(f"{lanes:>5} {s['luts']:>6} {s['ffs']:>6} {s['bram']:>5} {s['dsp']:>4} "
              f"{s['fmax_mhz']:>6.1f} {steady:>7.0f} {model:>7} {us:>7.2f} "
              f"{s['luts'] * us:>9.0f}", flush=True)
    if len(rows) > 1:
        lanes, luts, ffs = (np.array(c, dtype=float) for c in zip(*rows))
        (lut_slope, lut_fixed), (ff_slope, ff_fixed) = (np.polyfit(lanes, y, 1)
                                                        for y in (luts, ffs))
        print(f"LUT4 = {lut_fixed:.0f} + {lut_slope:.1f} per lane; "
              f"FF = {ff_fixed:.0f} + {ff_slope:.1f} per lane (least squares over "
              f"{', '.join(str(int(n)) for n in lanes)} lanes)")


if __name__ == "__main__":
    main()
