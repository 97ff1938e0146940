"""The bench CNNs on the iCEBreaker (iCE40 UP5K) with their default conversion (4-bit
activations, 8-bit weights) and a default build: float and spiking accuracy on the whole
test set, the planner's answer and time, cycles per image with the test images' own
activity (cycle model), µs per image at the build's clock and at its Fmax, and with
``--build`` place and route; ``--simulate N`` runs N test images through the planner's own
design (its memory plan, SPRAMs in yosys' cell model) on Icarus against the golden model,
with ``--netlist`` yosys' synth_ice40 netlist of it (every memory in its SB_RAM40_4K or
SB_SPRAM256KA cell: what the build places).

Run: ONESPIKE_DATA=../shared/data .venv/bin/python bench/icebreaker_cnn.py
     [--nets fashion-cnn mnist-cnn] [--build] [--simulate N] [--netlist] [--input-bits auto]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main():
    from models import bench_model
    from onespike.boards.build import LinkOptions, build, fit
    from onespike.boards.platforms import board_named
    from onespike.errors import OnespikeError
    from onespike.hdl.cycles import cycle_estimate
    from onespike.hdl.generate import accelerator
    from onespike.ir import save
    from onespike.mapper import convert
    from onespike.sim import closed_form

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["fashion-cnn", "mnist-cnn"])
    parser.add_argument("--build", action="store_true")
    parser.add_argument("--simulate", type=int, default=0)
    parser.add_argument("--netlist", action="store_true",
                        help="simulate yosys' synth_ice40 netlist of the design (every memory "
                             "in its SB_RAM40_4K or SB_SPRAM256KA cell, the logic in SB_LUT4, "
                             "SB_CARRY, SB_DFF and SB_MAC16 cells) instead of the RTL")
    parser.add_argument("--input-bits", default=None,
                        help="the conversion's input bits (default: the converter's; auto)")
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    board = board_named("icebreaker")
    for name in args.nets:
        model, data, float_accuracy = bench_model(name)
        input_bits = args.input_bits if args.input_bits in (None, "auto") \
            else int(args.input_bits)
        net = convert(model, data.x_train[:5000], act_bits=4, weight_bits=8,
                      input_bits=input_bits)
        golden = closed_form(net, net.encoder.encode(data.x_test))
        spiking = float((golden.classes == data.y_test).mean())
        print(f"{name}: float {float_accuracy:.2%}, spiking {spiking:.2%} "
              f"({spiking - float_accuracy:+.2%}) on {len(data.y_test)} test images")
        started = time.perf_counter()
        try:
            placed = fit(net, board)
        except OnespikeError as e:
            print(f"  planner ({time.perf_counter() - started:.1f} s): refused: {e}")
            continue
        print(f"  planner ({time.perf_counter() - started:.1f} s): {placed.reason}; "
              f"membranes {list(placed.membranes)}")
        top = accelerator(net, lanes=list(placed.lanes), use_dsp=placed.use_dsp,
                          firing=list(placed.firing), membranes=list(placed.membranes),
                          sizes=True)
        maps = [a[:200] for a in golden.activations[:len(net.layers)]]
        cycles = cycle_estimate(top, maps)["steady"]
        print(f"  {cycles:,} cycles per image back to back (cycle model, 200 test images' "
              f"activity): {cycles / board.clock_hz * 1e6:,.0f} µs at "
              f"{board.clock_hz / 1e6:g} MHz")
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / f"{name}.npz"
            save(net, path)
            if args.build:
                report = build(path, board, Path(work) / "out", log=lambda line: None)
                keys = ("luts", "logic_cells", "luts_estimate", "ffs", "bram", "spram", "dsp",
                        "fmax_mhz", "timing_met", "build_seconds")
                print("  build: " + json.dumps({k: report[k] for k in keys}))
                print(f"  at Fmax: {cycles / report['fmax_mhz']:,.0f} µs per image")
            if args.simulate:
                from onespike.boards.simulate import simulate_board
                a0 = net.encoder.encode(data.x_test[:args.simulate])
                started = time.perf_counter()
                result = simulate_board(net, a0, Path(work) / "sim", fit=placed,
                                        netlist=args.netlist)
                what = "synth_ice40 netlist on yosys' iCE40 cell models" if args.netlist \
                    else "design with SB_SPRAM256KA cell models"
                print(f"  Icarus, the planner's {what}: "
                      f"{result['answered']} of {args.simulate} images answered as the "
                      f"golden model ({time.perf_counter() - started:.0f} s), failures "
                      f"{result['failures'][:1]}")


if __name__ == "__main__":
    main()
