"""TTFS vs the dense baseline on the same board, network, lanes and flow: LUT4, FF, block
RAM, DSP, Fmax, cycles per image, microseconds per image and LUT4·µs per image.

Run: .venv/bin/python bench/compare.py [--nets digits,mnist,cnn,fashion] [--boards ulx3s-85f,icebreaker]
         [--samples N] [--flow bare|board] [--memories plan|yosys]

``--flow bare`` (the default on ECP5) builds both codings without the UART host link: a
small harness feeds ``i`` from an LFSR every cycle, keeps ``o`` ready and folds the class
and the logits into LED 0, so that nothing is optimised away; the taps are left unconnected
in both. Memories go where the board's memory plan puts them, as in ``onespike build``
(``boards.memories.plan_memories``: on ECP5 a weight memory deeper than one block RAM is
one 1-bit-wide memory per bit, without the read multiplexer of blocks cascaded in depth);
``--memories yosys`` leaves them to yosys (flow ``bare-y``).
``--flow board`` (the default on iCE40, whose 30 EBR a bare build of the MNIST MLP
overflows) runs ``onespike build --coding …`` instead: the fit planner places memories in
EBR, SPRAM and logic, and both codings carry the same UART link, so the difference between
them is the accelerators'. The tools are the same either way (yowasp yosys/nextpnr,
``--timing-allow-fail`` and nextpnr's JSON report). Cycles per image are measured in Amaranth's simulator on test
images (back to back: the spacing of results; alone: the latency), each checked exactly
against the golden model. µs/image = steady cycles / Fmax.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from amaranth.hdl import Elaboratable, Fragment, Module, Signal, Value
from amaranth.lib import io

from onespike.boards.tools import utilisation
from onespike.boards.memories import inventory, plan_memories
from onespike.errors import OnespikeError
from onespike.boards.platforms import board_named, tool_environment
from onespike.hdl.dense_top import DenseAccelerator
from onespike.sim.hardware import run
from onespike.hdl.top import Accelerator
from onespike.ir import load, save
from onespike.sim import closed_form, first_mismatch

ROOT = Path("build/compare")
VARIANTS = {  # name → (accelerator factory, yosys synth options per family)
    "ttfs": (lambda net, lanes: Accelerator(net, lanes=lanes), {"ice40": "-dsp"}),
    "ttfs-lut": (lambda net, lanes: Accelerator(net, lanes=lanes, use_dsp=False), {}),
    # every hidden layer sweeps its state words in every step (no sorted firing)
    "ttfs-sweep": (lambda net, lanes: Accelerator(net, lanes=lanes, firing="sweep"),
                   {"ice40": "-dsp"}),
    "dense": (lambda net, lanes: DenseAccelerator(net, lanes=lanes), {"ice40": "-dsp"}),
    "dense-lut": (lambda net, lanes: DenseAccelerator(net, lanes=lanes, use_dsp=False), {}),
}


class Harness(Elaboratable):
    """An accelerator fed by an LFSR, its results folded into LED 0. ``kinds``: where each
    memory goes (the board's memory plan, as ``onespike build`` makes it; None: yosys'
    choice)."""

    def __init__(self, accelerator, kinds=None):
        self.accelerator, self.kinds = accelerator, kinds

    def elaborate(self, platform):
        m = Module()
        acc = self.accelerator
        if hasattr(platform, "place"):     # the board's memory mapper: memories by name
            platform.configure(kinds=self.kinds, strict=self.kinds is not None)
            m.submodules.acc = platform.place(Fragment.get(acc, platform))
        else:
            m.submodules.acc = acc
        lfsr = Signal(16, init=1)
        m.d.sync += lfsr.eq((lfsr << 1) | (lfsr[15] ^ lfsr[14] ^ lfsr[12] ^ lfsr[3]))
        bits = len(acc.i.payload.value)
        fold = Signal()
        m.d.comb += [acc.i.valid.eq(1), acc.i.payload.value.eq(lfsr[:bits]),
                     acc.o.ready.eq(1)]
        m.d.sync += fold.eq(fold ^ (acc.o.valid & Value.cast(acc.o.payload.index).xor())
                            ^ (acc.tap_logits.valid & acc.tap_logits.payload.value.xor()))
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += led.o.eq(fold)
        return m


def nets():
    from onespike import zoo
    from onespike.mapper import convert

    ROOT.mkdir(parents=True, exist_ok=True)
    out = {}
    path = ROOT / "digits_mlp.npz"
    data = zoo.digits()
    if not path.is_file():
        save(convert(zoo.train(zoo.mlp([64, 48, 32, 10]), data), data.x_train), path)
    out["digits"] = (path, data.x_test)
    path = ROOT / "mnist_mlp.npz"
    if not path.is_file():
        mnist = zoo.idx_dataset("mnist")
        model = zoo.train(zoo.mlp([784, 128, 10]), mnist, epochs=1, batch=128, lr=1e-3)
        save(convert(model, mnist.x_train[:5000]), path)
        np.save(ROOT / "mnist_test_x.npy", mnist.x_test[:50])
    out["mnist"] = (path, np.load(ROOT / "mnist_test_x.npy"))
    path = ROOT / "mnist_cnn.npz"
    if not path.is_file():                    # the bench MNIST CNN (99 % float)
        sys.path.insert(0, str(Path(__file__).parent))
        from models import bench_model
        model, images, _ = bench_model("mnist-cnn")
        save(convert(model, images.x_train[:5000]), path)
        np.save(ROOT / "mnist_cnn_test_x.npy", images.x_test[:50])
    out["cnn"] = (path, np.load(ROOT / "mnist_cnn_test_x.npy"))
    sys.path.insert(0, str(Path(__file__).parent))
    from lean_nets import ROOT as LEAN, bench_net
    _, x = bench_net("fashion")               # the Fashion-MNIST CNN of bench/lean_table.py
    out["fashion"] = (LEAN / "fashion.npz", x[:50])
    return out


def build(net, board, lanes, variant, folder, yosys_memories=False):
    """Utilisation and Fmax of one bare accelerator (cached in ``folder/summary.json`` while
    the build files, the design's RTLIL among them, stay the same)."""
    report_path = folder / "summary.json"
    make, synth = VARIANTS[variant]
    platform = board.create_platform()
    overrides = {"nextpnr_opts": "--report report.json --timing-allow-fail"}
    if board.family in synth:
        overrides["synth_opts"] = synth[board.family]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using platform.request without", DeprecationWarning)
        kinds = None if yosys_memories else \
            plan_memories(inventory(make(net, lanes)), board).kinds
        plan = platform.build(Harness(make(net, lanes), kinds), name="top", do_build=False,
                              **overrides)
    design = hashlib.sha256(b"".join(
        name.encode() + (content.encode() if isinstance(content, str) else content)
        for name, content in sorted(plan.files.items()))).hexdigest()[:16]
    if report_path.is_file():
        cached = json.loads(report_path.read_text())
        if cached.get("design") == design:
            return cached
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in plan.files.items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    started = time.monotonic()
    with open(folder / "build.log", "w") as log:
        result = subprocess.run(["sh", "build_top.sh"], cwd=folder, env=tool_environment(),
                                stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"build failed: {folder / 'build.log'}")
    report = json.loads((folder / "report.json").read_text())
    (fmax,) = report["fmax"].values()
    summary = {"design": design, "fmax_mhz": round(float(fmax["achieved"]), 2),
               "seconds": round(time.monotonic() - started),
               **utilisation(board, report, (folder / "top.rpt").read_text(errors="replace"))}
    report_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def board_build(path, board, lanes, variant, folder):
    """``onespike build`` of one coding (cached in ``folder/build.json``); lanes may come
    back trimmed by the planner (the summary's per-layer ``lanes``)."""
    from onespike.boards.build import build as board_flow

    report_path = folder / "build.json"
    if not report_path.is_file():
        coding = variant.split("-")[0]
        board_flow(path, board, folder, lanes=lanes, coding=coding,
                   use_dsp=not variant.endswith("-lut"), log=lambda line: None)
    return json.loads(report_path.read_text())


def cycles(net, lanes, variant, a0):
    """(latency of one image, steady spacing back to back), checked against the golden model."""
    make, _ = VARIANTS[variant]
    simulate = run
    results = []
    for images in (a0[:1], a0):
        hw = simulate(make(net, lanes), images)
        golden = closed_form(net, images)
        assert first_mismatch(net, golden, hw.trace) is None
        assert (hw.trace.classes == golden.classes).all()
        results.append(hw)
    return results[0].cycles, float(np.diff(results[1].sample_done).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="digits,mnist")
    parser.add_argument("--boards", default="ulx3s-85f,icebreaker")
    parser.add_argument("--variants", default="ttfs,ttfs-lut,dense,dense-lut",
                        help="codings: ttfs and dense with DSP multiplies, -lut without")
    parser.add_argument("--lanes", default="digits=4,mnist=8,cnn=8,fashion=8",
                        help="per network: one count, or one per layer as 4/1")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--flow", choices=("bare", "board"), default=None,
                        help="bare accelerators (default on ECP5) or `onespike build` with "
                             "the link (default on iCE40)")
    parser.add_argument("--memories", choices=("plan", "yosys"), default="plan",
                        help="bare builds: memories where the board's memory plan puts "
                             "them, as `onespike build` does (ECP5: deep weight memories "
                             "one block per bit), or where yosys would")
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    lanes_of = dict((k, [int(n) for n in v.split("/")] if "/" in v else int(v))
                    for k, v in (x.split("=") for x in args.lanes.split(",")))
    available = nets()
    rows = []
    for net_name in args.nets.split(","):
        path, x = available[net_name]
        net = load(path)
        a0 = net.encoder.encode(x[:args.samples])
        lanes = lanes_of[net_name]
        measured = {}
        for variant in args.variants.split(","):
            for board_name in args.boards.split(","):
                board = board_named(board_name)
                flow = args.flow or ("board" if board.family == "ice40" else "bare")
                if flow == "bare" and args.memories == "yosys":
                    flow = "bare-y"
                tag = "x".join(map(str, lanes)) if isinstance(lanes, list) else lanes
                folder = ROOT / f"{net_name}-{board_name}-p{tag}-{variant}-{flow}"
                try:
                    if flow.startswith("bare"):
                        s, used = build(net, board, lanes, variant, folder,
                                        yosys_memories=flow == "bare-y"), lanes
                    else:
                        s = board_build(path, board, lanes, variant, folder)
                        used = s["lanes"] if len(set(s["lanes"])) > 1 else s["lanes"][0]
                except (RuntimeError, OnespikeError) as e:
                    rows.append(f"{net_name:<7} {board_name:<11} {variant:<10} {lanes!s:>5} "
                                f"{flow:<5} failed: {e}")
                    print(rows[-1], flush=True)
                    continue
                key = (variant, str(used))      # simulated once per coding and lanes
                if key not in measured:
                    measured[key] = cycles(net, used, variant, a0)
                latency, steady = measured[key]
                us = steady / s["fmax_mhz"]
                shown = "/".join(map(str, used)) if isinstance(used, list) else str(used)
                rows.append(f"{net_name:<7} {board_name:<11} {variant:<10} {shown:>5} "
                            f"{flow:<5} "
                            f"{s['luts']:>6} {s['ffs']:>6} {s['bram']:>5} {s['spram']:>5} "
                            f"{s['dsp']:>4} {s['fmax_mhz']:>6.1f} {latency:>8} {steady:>8.0f} "
                            f"{us:>8.2f} {s['luts'] * us:>10.0f}")
                print(rows[-1], flush=True)
    print(f"{'net':<7} {'board':<11} {'coding':<10} {'lanes':>5} {'flow':<5} {'LUT4':>6} {'FF':>6} "
          f"{'BRAM':>5} {'SPRAM':>5} {'DSP':>4} {'Fmax':>6} {'latency':>8} {'steady':>8} "
          f"{'us/img':>8} {'LUT4*us':>10}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
