"""The row-by-row MNIST RNN (``bench/rnn_mnist.py``: 28 steps of 28 pixels, ReLU RNN
28-128-10, 4 activation bits, 8 weight bits) on the boards: ``onespike build`` with the lanes
the planner picks, then per board LUTs, flip-flops, memories, DSP blocks and Fmax from the
build (build.json), the cycles per sequence measured on real test sequences in RTL
(``onespike.sim.verify``, Verilator, every layer checked against the golden model, samples
back to back, no idle cycles or backpressure) next to the cycle model
(``hdl.cycles.cycle_estimate``: every neuron spiking, and on the same sequences' spikes), and
microseconds per sequence at Fmax. The UART adds 10 bits per input byte: 784 bytes a
sequence, 7.8 ms at 1 Mbaud.

Run: ONESPIKE_DATA=/work/shared/data .venv/bin/python bench/rnn_boards.py [--boards B...]
     [--samples N] [--sim verilator|icarus] [--json]
Builds go to build/bench/rnn_boards/<board>/ and are reused while their build.json and
network.npz are those of the current network (delete the folder to build again: the
ULX3S-85F build at 128 lanes takes about 20 minutes of place and route).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from rnn_mnist import ACT_BITS, OUT, WEIGHT_BITS, bench_rnn, rows  # noqa: E402

ROOT = Path("build/bench/rnn_boards")
BOARDS = ("ulx3s-85f", "icebreaker")


def network():
    """The converted RNN (cached by bench/rnn_mnist.py) and the MNIST test sequences."""
    from onespike import zoo
    from onespike.ir import load, save

    path = OUT / "net.npz"
    if not path.is_file():
        from onespike.mapper import convert

        model, data, _ = bench_rnn(progress=False)
        save(convert(model, data.x_train[:5000], act_bits=ACT_BITS,
                     weight_bits=WEIGHT_BITS), path)
    return path, load(path), rows(zoo.idx_dataset("mnist"))


def board_build(net_path, net, name):
    """build.json of the board's build of ``net`` (built when missing or stale)."""
    from onespike.boards.build import build
    from onespike.boards.platforms import board_named
    from onespike.boards.protocol import network_checksum
    from onespike.ir import load

    folder = ROOT / name
    report = folder / "build.json"
    if report.is_file() and (folder / "network.npz").is_file() and \
            network_checksum(load(folder / "network.npz")) == network_checksum(net):
        return json.loads(report.read_text())
    return build(net_path, board_named(name), folder, log=lambda line: print(line,
                                                                            file=sys.stderr))


def measured(net, report, a0, simulator):
    """Cycles per sequence back to back and the latency of the first, in RTL (checked)."""
    from onespike.hdl.generate import generate
    from onespike.sim.verify import verify

    firing = "auto" if "sorted" in report["firing"] else "sweep"
    lanes = report["lanes"]
    rtl = ROOT / "rtl" / f"{report['board']}-p{'-'.join(map(str, lanes))}"
    if not (rtl / "manifest.json").is_file():
        generate(net, rtl, lanes=lanes, use_dsp=report["use_dsp"], firing=firing)
    result = verify(net, a0, rtl=rtl, simulator=simulator, idle=0.0, backpressure=0.0,
                    build_root=ROOT / "verify", progress=False)
    if result["mismatches"]:
        raise SystemExit(f"{report['board']}: the RTL differs from the golden model: "
                         f"{result['first_mismatch']}")
    return result


def modelled(net, report, a0):
    """The cycle model's cycles per sequence: every neuron spiking, and on ``a0``'s spikes."""
    from onespike.hdl.cycles import cycle_estimate
    from onespike.hdl.plan import AcceleratorPlan
    from onespike.sim import closed_form

    firing = "auto" if "sorted" in report["firing"] else "sweep"
    top = AcceleratorPlan(net, lanes=report["lanes"], use_dsp=report["use_dsp"], firing=firing)
    maps = closed_form(net, a0).activations[:len(net.layers)]
    return cycle_estimate(top)["steady"], cycle_estimate(top, maps)["steady"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boards", nargs="+", default=list(BOARDS))
    parser.add_argument("--samples", type=int, default=20, help="test sequences simulated")
    parser.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    command = f"python {' '.join(sys.argv)}"
    net_path, net, data = network()
    a0 = net.encoder.encode(data.x_test[:args.samples])
    rows_out = []
    for name in args.boards:
        report = board_build(net_path, net, name)
        rtl = measured(net, report, a0, args.sim)
        worst, model = modelled(net, report, a0)
        steady = rtl["cycles_per_inference"]
        rows_out.append({
            "board": name, "lanes": report["lanes"], "luts": report["luts"],
            "ffs": report["ffs"], "bram": report["bram"], "spram": report["spram"],
            "lutram_slices": report.get("lutram_slices"), "dsp": report["dsp"],
            "clock_mhz": report["clock_mhz"], "fmax_mhz": report["fmax_mhz"],
            "timing_met": report["timing_met"], "cycles_per_sequence": round(steady),
            "latency_cycles": rtl["latency_cycles"], "model_every_neuron": worst,
            "model_on_these_spikes": model, "us_per_sequence_at_fmax":
                round(steady / report["fmax_mhz"], 1),
            "us_per_sequence_at_clock": round(steady / report["clock_mhz"], 1),
            "samples": args.samples, "rtl_mismatches": rtl["mismatches"],
            "build_seconds": report["build_seconds"]})
    if args.json:
        print(json.dumps({"command": command, "rows": rows_out}))
        return
    print(f"command: {command}")
    print(f"row-by-row MNIST RNN 28-128-10, {net.steps} steps, {args.samples} test sequences "
          f"back to back in RTL ({args.sim}), exact against the golden model")
    print(f"{'board':<11} {'lanes':<9} {'LUT4':>6} {'FF':>6} {'BRAM':>4} {'LUTRAM':>6} "
          f"{'SPRAM':>5} "
          f"{'DSP':>3} {'Fmax':>6} {'cycles/seq':>10} {'model':>13} {'latency':>8} "
          f"{'us@Fmax':>8} {'us@clk':>7}")
    for r in rows_out:
        print(f"{r['board']:<11} {str(r['lanes']):<9} {r['luts']:>6} {r['ffs']:>6} "
              f"{r['bram']:>4} {r['lutram_slices'] or '-':>6} {r['spram']:>5} {r['dsp']:>3} "
              f"{r['fmax_mhz']:>6.1f} "
              f"{r['cycles_per_sequence']:>10} {r['model_on_these_spikes']:>6}/"
              f"{r['model_every_neuron']:<6} {r['latency_cycles']:>8} "
              f"{r['us_per_sequence_at_fmax']:>8} {r['us_per_sequence_at_clock']:>7}")
    print("BRAM: DP16KD (ECP5) or EBR (iCE40); LUTRAM: ECP5 slices of distributed RAM; "
          "model: hdl.cycles on these sequences' spikes / with every neuron spiking")


if __name__ == "__main__":
    main()
