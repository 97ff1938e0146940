"""The board planner's LUT estimate against place and route: ``onespike build`` of one bench
architecture on one board at a sweep of lane counts and with no ``--lanes`` (the planner's
default), each a real yosys/nextpnr run; prints per build the lanes, the estimate, the LUTs
nextpnr placed, their ratio, Fmax and the build's wall time (the build's own log, replans
included, on stderr).

The networks are bench/planner_time.py's (untrained weights, random calibration inputs:
sizes and LUTs depend on shapes and bits, not on training).

Run: .venv/bin/python bench/lut_estimate.py [--net mlp-512] [--board ulx3s-85f]
         [--lanes 1 4 16 32] [--weight-bits 8] [--no-default]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from planner_time import architectures, network  # noqa: E402


def main(argv=None):
    from onespike.boards.build import build
    from onespike.boards.platforms import board_named
    from onespike.ir import save

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="mlp-512", choices=list(architectures()))
    parser.add_argument("--board", default="ulx3s-85f")
    parser.add_argument("--lanes", type=int, nargs="*", default=[1, 4, 16, 32])
    parser.add_argument("--weight-bits", type=int, default=8)
    parser.add_argument("--no-default", action="store_true",
                        help="leave out the build without --lanes")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"command: python {' '.join(sys.argv)}  (commit {commit})")
    board = board_named(args.board)
    net = network(args.net, args.weight_bits)
    print("| lanes asked | lanes built | LUT estimate | LUT sites placed | placed / estimate "
          "| Fmax MHz | build seconds |\n|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        path = save(net, Path(work) / f"{args.net}.npz")
        for lanes in [*args.lanes, *([] if args.no_default else [None])]:
            started = time.monotonic()
            report = build(path, board, Path(work) / "out", lanes=lanes,
                           log=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
            seconds = time.monotonic() - started
            estimate, placed = report["luts_estimate"], report["lut_sites"]
            print(f"| {lanes or 'default'} | {report['lanes']} | {estimate:,} | {placed:,} "
                  f"| {placed / estimate:.2f} | {report['fmax_mhz']:.1f} | {seconds:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
