"""The ``onespike`` command line: one program, one subcommand per job.

Every error is one line on stderr and a non-zero exit; ``--json`` prints exactly one JSON
object on stdout (progress bars go to stderr).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from onespike.errors import OnespikeError

EPILOG = """\
typical flow:
  onespike demo                                   train, convert and simulate on digits
  onespike convert model.pt2 --calib x.npy -o net.npz
  onespike info net.npz                           layers, windows and register widths
  onespike export net.npz -o net.onnx             the integer network as exact int64 ONNX
  onespike simulate net.npz --inputs x.npy --labels y.npy [--code rate-bipolar]
  onespike generate net.npz --lanes 8 -o rtl/   Verilog (onespike_top) + manifest
  onespike verify net.npz --rtl rtl/ --sim verilator --inputs x.npy
                                                  cocotb regression against the golden model
  onespike boards                                 supported FPGA boards
  onespike build net.npz --board icebreaker -o bit/   bitstream (open-source tools only)
  onespike run --build bit/ --port /dev/ttyUSB1 --inputs x.npy
                                                  classify on the board over its UART
  onespike report net.npz --inputs x.npy --labels y.npy -o report/
                                                  Markdown report with figures
"""


def _load_array(path, what, *, integer=False):
    path = Path(path)
    if not path.is_file():
        raise OnespikeError(f"{what} file {path} does not exist")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise OnespikeError(f"{path} is not a readable .npy array ({str(e)[:120]}); save "
                            f"{what} with numpy.save") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in ("iu" if integer
                                                                      else "iufb"):
        kind = "integer class labels" if integer else "a numeric array"
        raise OnespikeError(f"{what} file {path} must hold {kind}, not {array.dtype}")
    return array


def _emit(args, result: dict, lines):
    if args.json:
        print(json.dumps(result))
    else:
        for line in lines:
            print(line)


def cmd_convert(args):
    from onespike.ir import save
    from onespike.report import describe
    from onespike.mapper import convert_exported, convert_onnx

    calib = _load_array(args.calib, "calibration")
    bits = dict(act_bits=args.act_bits, weight_bits=args.weight_bits,
                input_bits=args.input_bits)
    notes = []
    if Path(args.model).suffix.lower() == ".onnx":
        net = convert_onnx(args.model, calib, **bits, notes=notes,
                           recalibrate=args.recalibrate)
    elif args.recalibrate:
        raise OnespikeError("--recalibrate applies to quantized ONNX models (QONNX, QCDQ)")
    else:
        net = convert_exported(args.model, calib, **bits, notes=notes)
    save(net, args.output)
    result = {"output": str(args.output), "layers": [l.kind for l in net.layers],
              "latency_steps": net.latency_steps, "num_classes": net.num_classes,
              "notes": notes}
    _emit(args, result, [f"wrote {args.output}"] + [
        n if n.startswith("warning:") else f"note: {n}" for n in notes] + describe(net))


def cmd_finetune(args):
    from onespike.ir import load, save
    from onespike.mapper import finetune

    net = load(args.net)
    x = _load_array(args.data, "training inputs")
    y = _load_array(args.labels, "labels", integer=True)
    tuned = finetune(net, x, y, weight_bits=args.weight_bits,
                     epochs=args.epochs, lr=args.lr, batch=args.batch,
                     spike_weight=args.spike_weight, held_out=args.held_out, keep=args.keep,
                     seed=args.seed, progress=not args.json)
    save(tuned.network(), args.output)
    history = tuned.history
    result = {"output": str(args.output), "best_epoch": tuned.best_epoch, "history": history}
    lines = ["epoch  loss     held-out loss  accuracy  spiking neurons"]
    lines += [f"{h['epoch']:>5}  {'-' if h['loss'] is None else format(h['loss'], '.4f'):>7}"
              f"  {h['held_out_loss']:>13.4f}  {h['accuracy']:>8.2%}  {h['spiking']:>15.1%}"
              + ("   <- kept" if h["epoch"] == tuned.best_epoch else "") for h in history]
    _emit(args, result, lines + [f"wrote {args.output}"])


def cmd_info(args):
    from onespike.ir import load
    from onespike.report import describe

    net = load(args.net)
    result = net.header()
    _emit(args, result, describe(net))


def cmd_export(args):
    from onespike.ir import load
    from onespike.mapper.onnx_export import save_onnx

    net = load(args.net)
    save_onnx(net, args.output, encoder=args.encoder)
    source = "x (float64, as the model takes it)" if args.encoder else \
        "a0 (int64, net.encoder.encode(x))"
    _emit(args, {"output": str(args.output), "input": "x" if args.encoder else "a0",
                 "outputs": ["logits", "class"]},
          [f"wrote {args.output}: input {source} -> logits (int64), class; onnxruntime "
           f"gives the golden model's logits bit for bit"])


def cmd_simulate(args):
    from onespike.ir import MaxPool, load
    from onespike.sim.evaluate import evaluate
    from onespike.sim.rate import rate_summary

    net = load(args.net)
    x = _load_array(args.inputs, "inputs")
    labels = None if args.labels is None else _load_array(args.labels, "labels", integer=True)
    if args.batch < 1:
        raise OnespikeError(f"--batch must be a positive integer, not {args.batch}")
    if args.old_coding is not None:        # the name before 2026-12: --code now
        print("onespike: simulate --coding is now --code (generate's --coding chooses the "
              "accelerator)", file=sys.stderr)
        args.code = args.old_coding
    if args.code == "ttfs":
        if args.steps is not None:
            raise OnespikeError("--steps applies to --code rate or rate-bipolar only")
        result, classes = evaluate(net, x, labels, mode=args.mode, batch=args.batch,
                                   progress=not args.json)
        what = f"{args.mode} simulation"
    else:
        steps = args.steps if args.steps is not None else next(
            (l.levels for l in net.layers[:-1] if not isinstance(l, MaxPool)),
            net.encoder.levels)        # A of the first hidden layer: exact there
        if steps < 1:
            raise OnespikeError(f"--steps must be a positive integer, not {steps}")
        result, classes = rate_summary(net, x, labels, steps=steps,
                                       bipolar=args.code == "rate-bipolar",
                                       batch=args.batch)
        what = f"{args.code} coding, T = {steps}"
    if args.predictions:
        np.save(args.predictions, classes)
    sequences = f" (sequences of {net.steps} steps)" if net.steps else ""
    lines = [f"{result['samples']} samples{sequences}, {what}"]
    if labels is not None:
        lines.append(f"accuracy            {result['accuracy']:.4f}")
    lines += [f"spikes per neuron   {result['spikes_per_neuron']:.3f}",
              f"synaptic ops/inf.   {result['synaptic_ops_per_inference']:.0f}",
              f"latency             {result['latency_steps']} time steps"]
    if args.code != "ttfs":
        lines += [f"negative spikes     {result['negative_spikes_per_inference']:.2f} per "
                  f"inference; input MACs {result['input_macs_per_inference']:.0f} (analog "
                  f"input)",
                  "exact               " + ("yes (proved: counts = quantized activations)"
                                            if result["guaranteed_exact"] else
                                            "not guaranteed: an approximation of the "
                                            "quantized network")]
    _emit(args, result, lines)


def _firing(args) -> str:
    """``--firing``, which applies to the TTFS coding only."""
    if args.coding != "ttfs" and args.firing != "auto":
        raise OnespikeError(f"--firing {args.firing} applies to --coding ttfs only (the "
                            f"dense coding has no firing phase)")
    return args.firing


def _coding(args) -> dict:
    """``coding``, ``skip_zeros``, ``use_dsp`` and ``firing`` from ``--coding``,
    ``--no-skip-zeros``, ``--no-dsp`` and ``--firing`` (``--no-skip-zeros`` applies to the
    dense coding only, ``--firing`` to the TTFS coding only)."""
    if args.coding == "ttfs" and args.no_skip_zeros:
        raise OnespikeError("--no-skip-zeros applies to --coding dense only")
    if args.coding != "ttfs" and args.membranes not in ("auto", "dual"):
        raise OnespikeError(f"--membranes {args.membranes} applies to --coding ttfs only (the "
                            f"dense coding has no membranes)")
    return {"coding": args.coding, "skip_zeros": not args.no_skip_zeros,
            "use_dsp": not args.no_dsp, "firing": _firing(args), "membranes": args.membranes}


def _lane_counts(text):
    """``--lanes``: one count ``P`` or one per layer, ``P1,P2,...``."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a lane count P nor one count "
                                         f"per layer P1,P2,...") from None
    return counts[0] if len(counts) == 1 else counts     # the library checks the range


LANES_HELP = ("P: a budget, the lanes that P in every layer takes (capped at each layer's "
              "size), spent where the work is when the cycle model finds that faster (TTFS "
              "coding; the output says which; --uniform-lanes: P everywhere); P1,P2,...: one "
              "count per layer, a max-pooling layer taking 1")


def _add_lanes(p, default, what):
    p.add_argument("--lanes", type=_lane_counts, default=default, metavar="P|P1,P2,...",
                   help=f"{what}: {LANES_HELP}" + (f" (default {default})" if default
                                                   else ""))
    p.add_argument("--uniform-lanes", action="store_true",
                   help="--lanes P in every layer, not spent by work")
    p.set_defaults(lanes_default=default)


def _spend_lanes(net, args, coding) -> tuple:
    """``--lanes`` and ``--uniform-lanes`` as the accelerator takes them, and the line
    that says how they were spent (None: as asked)."""
    from onespike.hdl.plan import layer_lanes, spend_lanes

    if args.uniform_lanes and isinstance(args.lanes, list):
        raise OnespikeError("--uniform-lanes takes one lane count, not one per layer")
    if args.lanes is None or args.uniform_lanes or isinstance(args.lanes, list) \
            or coding["coding"] != "ttfs":
        return args.lanes, None
    lanes, how, cycles = spend_lanes(net, args.lanes, firing=coding["firing"])
    if how != "by work":
        return args.lanes, None
    return lanes, (f"--lanes {args.lanes}: its {sum(layer_lanes(net, args.lanes))} lanes spent "
                   f"where the work is, {lanes}: the cycle model (a quarter of the neurons "
                   f"spiking) gives {cycles['by work'] / cycles['uniform']:.2f}x the cycles "
                   f"per sample of {args.lanes} everywhere (--uniform-lanes)")


def _add_accelerator(p, lanes_default, lanes_what, net=True):
    """The arguments that choose an accelerator: the network (``net``), ``--lanes``,
    ``--uniform-lanes``, the coding options and ``--plan``."""
    if net:
        p.add_argument("net", help="network file (.npz)")
    _add_lanes(p, lanes_default, lanes_what)
    _add_coding(p)
    _add_plan(p)


def _add_plan(p):
    p.add_argument("--plan", type=Path, metavar="FILE",
                   help="build exactly the accelerator a plan describes (`onespike plan NET "
                        "--json > FILE`, edited or not: lanes and firing per layer, coding, "
                        "DSP use), instead of --lanes and the coding options")


def _accelerator_args(net, args) -> tuple:
    """``generate``'s arguments from ``--plan FILE``, or from ``--lanes``,
    ``--uniform-lanes`` and the coding options; and the line that says where they came
    from (None: as asked)."""
    from onespike.hdl.generate import plan_options

    if getattr(args, "plan", None) is None:
        coding = _coding(args)
        lanes, spent = _spend_lanes(net, args, coding)
        return {"lanes": lanes, **coding}, spent
    beside = [flag for flag, given in (
        ("--lanes", args.lanes != args.lanes_default), ("--uniform-lanes", args.uniform_lanes),
        ("--coding", args.coding != "ttfs"), ("--firing", args.firing != "auto"),
        ("--membranes", args.membranes != "auto"),
        ("--no-dsp", args.no_dsp), ("--no-skip-zeros", getattr(args, "no_skip_zeros", False)))
        if given]
    if beside:
        raise OnespikeError(f"--plan fixes the accelerator's options; drop {', '.join(beside)} "
                            f"or edit the plan")
    if not args.plan.is_file():
        raise OnespikeError(f"plan file {args.plan} does not exist")
    try:
        plan = json.loads(args.plan.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise OnespikeError(f"{args.plan} is not JSON ({str(e)[:80]}); write a plan with "
                            f"`onespike plan NET --json > {args.plan}`") from None
    return plan_options(net, plan), f"options from the plan {args.plan}"


def _add_firing(p):
    from onespike.hdl.firing import FIRINGS
    from onespike.hdl.generate import generate

    p.add_argument("--firing", choices=FIRINGS, default=_default(generate, "firing"),
                   help="how a hidden layer finds its spikes: sweep tests every state word "
                        "in every time step; sorted files each neuron on its step's list in "
                        "one pass (fewer cycles on large maps; costs list memories and a "
                        "wider multiply per lane); auto sorts only a layer whose sweep limits "
                        "the pipeline, where that saves a quarter of the cycles per sample "
                        "(ttfs only; default %(default)s)")


def _add_coding(p):
    from onespike.hdl.generate import CODINGS, generate

    p.add_argument("--coding", choices=tuple(CODINGS), default=_default(generate, "coding"),
                   help="ttfs: the spiking accelerator; dense: the conventional "
                        "multiply-accumulate accelerator of the same integer network, same "
                        "ports, for comparison (default %(default)s)")
    p.add_argument("--no-skip-zeros", action="store_true",
                   help="dense: send every activation, zeros included (default: skip them)")
    p.add_argument("--no-dsp", action="store_true",
                   help="the lane multiplies from shifted adds, no DSP blocks (default: "
                        "plain multiplies that synthesis may put in DSP blocks)")
    _add_firing(p)
    _add_membranes(p)


def _add_membranes(p):
    from onespike.hdl.plan import MEMBRANES

    p.add_argument("--membranes", choices=MEMBRANES, default="auto",
                   help="where a hidden layer keeps its membranes: dual (a RAM with two "
                        "reads and a write a cycle, the core at full speed) or single (one "
                        "single-port RAM, such as an iCE40 SPRAM; the core takes a step every "
                        "3 cycles, sweep firing); auto: dual, except that a board's planner "
                        "(build, plan --board) makes the largest single, in SPRAM, where the "
                        "block RAM runs short (default %(default)s)")


def cmd_generate(args):
    from onespike.hdl.generate import generate
    from onespike.ir import load

    net = load(args.net)
    start = time.perf_counter()
    options, spent = _accelerator_args(net, args)
    info = generate(net, args.output, **options)
    seconds = time.perf_counter() - start
    files = [str(Path(args.output) / name) for name in info["verilog"]]
    result = {"verilog": files, "manifest": str(Path(args.output) / "manifest.json"),
              "top": info["top"], "lanes": [l.get("lanes", 1) for l in info["layers"]],
              "firing": [l.get("firing") for l in info["layers"]],
              "weight_memory_bits": info["memory_bits"]["weights"],
              "memory_bits": info["memory_bits"],
              "lanes_from": spent or "as asked",
              "coding": info["coding"], "latency_steps": net.latency_steps,
              "seconds": round(seconds, 3),
              "cycles": info["cycles"].get("every_neuron_spiking")
              or info["cycles"]["every_neuron_active"]}
    lines = [f"wrote {files[0]} and {result['manifest']} in {seconds:.1f} s",
             *_accelerator_lines(info, spent)]
    _emit(args, result, lines)


def _accelerator_lines(info, spent) -> list:
    """What a manifest or plan says of the accelerator, in a few lines: how the lanes were
    chosen, the lanes and firing per layer, memory, cycles if every neuron spikes."""
    worst = info["cycles"].get("every_neuron_spiking") or info["cycles"]["every_neuron_active"]
    slowest = max(worst["stages"], key=worst["stages"].get)
    lines = [spent] if spent else []
    lines.append(f"lanes per layer {[l.get('lanes', 1) for l in info['layers']]}; memory "
                 f"{info['memory_bits']['total']:,} bits ("
                 + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in
                             info["memory_bits"].items() if k != "total") + ")")
    if info["coding"] == "ttfs":
        lines.append("firing per layer: " + " ".join(l.get("firing") or "-"
                                                     for l in info["layers"])
                     + " (-: no firing phase)")
        for form, what in (("single", "single-port membranes (one RAM port, a step every 3 "
                                      "cycles)"),
                           ("one-bank", "one membrane bank (a sample integrates once the one "
                                        "before has fired)")):
            chosen = [l["index"] for l in info["layers"] if form in (l.get("membranes") or "")]
            if chosen:
                lines.append(f"{what} in layer(s) {', '.join(map(str, chosen))}")
    lines.append(f"if every neuron spikes: about {worst['steady']} cycles per sample back to "
                 f"back (slowest stage {slowest}), latency about {worst['latency']} cycles")
    return lines


def _fit_to_board(net, name, options) -> tuple:
    """``(options, fit, board)``: the board planner's answer for ``options`` (its lanes,
    firing and DSP use; the planner's own lanes where ``options["lanes"]`` is None)."""
    from onespike.boards.build import LinkOptions, fit
    from onespike.boards.platforms import board_named

    board = board_named(name)
    firing, membranes = (options[k] if isinstance(options[k], str) else tuple(options[k])
                         for k in ("firing", "membranes"))
    link = LinkOptions(coding=options["coding"], use_dsp=options["use_dsp"], firing=firing,
                       membranes=membranes,
                       encoder_banks=options.get("encoder_banks", "auto"))
    placed = fit(net, board, options["lanes"], link)
    ttfs = options["coding"] == "ttfs"
    return ({**options, "lanes": list(placed.lanes), "use_dsp": placed.use_dsp,
             "firing": list(placed.firing) if ttfs else "auto",
             "membranes": list(placed.membranes) if ttfs else "dual",
             "encoder_banks": placed.encoder_banks}, placed, board)


def cmd_plan(args):
    from onespike.hdl.generate import plan
    from onespike.ir import load

    net = load(args.net)
    if args.board is not None and args.plan is None and args.lanes == args.lanes_default \
            and not args.uniform_lanes:
        options, spent = {"lanes": None, **_coding(args)}, None   # the board's planner
    else:
        options, spent = _accelerator_args(net, args)
    fitted = None if args.board is None else _fit_to_board(net, args.board, options)
    if fitted is not None:
        options, placed, board = fitted
    result = plan(net, **options)
    if fitted is not None:
        result["board"] = {
            "name": board.name, "device": board.device, "luts_estimated": placed.luts,
            "luts": board.luts, "blocks": placed.plan.blocks, "blocks_available": board.blocks,
            "spram": placed.plan.sprams, "spram_available": board.spram,
            "dsps": placed.dsps, "dsps_available": board.dsps,
            "memories": placed.plan.kinds, "reason": placed.reason}
    use = result["use_dsp"]
    multiplies = ("plain multiplies (DSP blocks where synthesis puts them)" if use is True
                  else "shifted adds (no DSP blocks)" if use is False else
                  "plain multiplies (DSP blocks) in layer(s) "
                  + ", ".join(str(n) for n, u in enumerate(use) if u) + ", shifted adds in "
                  "the others")
    lines = [f"{args.net}: the {result['coding']} accelerator, lane multiplies as "
             f"{multiplies}",
             f"{'layer':<6}{'kind':<10}{'neurons':>8}{'lanes':>6}  {'firing':<7}"
             f"{'membranes':<10}{'weight memory':>16}{'state bits':>11}{'multipliers':>12}"]
    for l in result["layers"]:
        weights = l.get("weight_memory") or {}
        shape = f"{weights['depth']} x {weights['width']}" if weights else "-"
        lines.append(f"{l['index']:<6}{l['kind']:<10}{l.get('neurons', '-'):>8}"
                     f"{l.get('lanes', '-'):>6}  {l.get('firing') or '-':<7}"
                     f"{l.get('membranes') or '-':<10}{shape:>16}"
                     f"{l.get('state_memory_bits', l.get('fired_memory_bits', 0)):>11,}"
                     f"{l.get('multipliers', 0):>12}")
    lines += _accelerator_lines(result, spent)
    if fitted is not None:
        b = result["board"]
        lines.append(f"on {b['name']} ({b['device']}): ~{b['luts_estimated']:,} of "
                     f"{b['luts']:,} LUTs estimated, {b['blocks']}/{b['blocks_available']} "
                     f"block RAMs" + (f", {b['spram']}/{b['spram_available']} SPRAM"
                                      if b["spram_available"] else "")
                     + f", {b['dsps']}/{b['dsps_available']} DSP; {b['reason']}")
    lines.append(f"to pin it: onespike plan {args.net} ... --json > plan.json, then "
                 f"onespike generate|verify|build {args.net} --plan plan.json")
    _emit(args, result, lines)


def cmd_verify(args):
    from onespike.ir import load
    from onespike.sim.verify import EDGE_SAMPLES, parse_shard, stimulus, verify

    net = load(args.net)
    shard = None if args.shard is None else parse_shard(args.shard)
    if args.jobs < 1:
        raise OnespikeError(f"--jobs must be a positive integer, not {args.jobs}")
    if args.samples is not None and args.samples < 1:
        raise OnespikeError(f"--samples must be a positive integer, not {args.samples}")
    for name in ("idle", "backpressure"):
        if not 0 <= getattr(args, name) < 1:
            raise OnespikeError(f"--{name} must be in [0, 1), not {getattr(args, name)}")
    x = None if args.inputs is None else _load_array(args.inputs, "inputs")
    a0 = stimulus(net, x, args.samples, args.seed)
    options, spent = _accelerator_args(net, args) if args.rtl is None else ({
        "lanes": args.lanes, **_coding(args)}, None)
    result = verify(net, a0, rtl=args.rtl, simulator=args.sim,
                    waves=args.waves, idle=args.idle, backpressure=args.backpressure,
                    seed=args.seed, interrupt_cycles=args.reset_after,
                    build_root=args.build_dir, progress=not args.json, bench=args.bench,
                    jobs=args.jobs, shard=shard, **options)
    if shard is None:
        result["input_samples"] = result["samples"] - EDGE_SAMPLES
        what = (f"{result['samples']} samples ({EDGE_SAMPLES} edge cases + "
                f"{result['input_samples']} inputs)")
    else:
        first = result["first_sample"]
        result["input_samples"] = result["samples"] - max(0, EDGE_SAMPLES - first)
        what = (f"shard {result['shard']}: samples {first}..{first + result['samples'] - 1}"
                f" of {len(a0)}")
    jobs = f" in {result['jobs']} jobs" if result["jobs"] > 1 else ""
    lines = [f"{what} on {result['simulator']}{jobs}: "
             f"{result['values_compared']} spike times, logits and classes compared, "
             f"{result['mismatches']} mismatches"]
    if spent:
        lines.insert(0, spent)
        result["lanes_from"] = spent
    if result["first_mismatch"]:
        lines.append(f"first mismatch: {result['first_mismatch']}")
    if result["cycles_per_inference"]:
        lines.append(f"{result['cycles_per_inference']:.0f} cycles per inference back to back, "
                     f"latency {result['latency_cycles']} cycles")
    lines.append(f"{result['samples_per_second']} samples/s simulated (build "
                 f"{result['build_seconds']} s apart); results "
                 f"{result['junit']}" + (f", waves {result['waves']}" if result["waves"]
                                         else ""))
    _emit(args, result, lines)
    return 1 if result["mismatches"] else 0


def cmd_boards(args):
    from onespike.boards.platforms import BOARDS

    rows = [{"name": b.name, "description": b.description, "family": b.family,
             "device": b.device, "clock_mhz": b.clock_hz / 1e6, "luts": b.luts,
             "block_ram": f"{b.blocks} x {b.block_ram.name}", "spram": b.spram, "dsp": b.dsps,
             "default_lanes": b.default_lanes} for b in BOARDS.values()]
    lines = [f"{'board':<14} {'device':<22} {'clock':>7}  {'LUTs':>6}  {'DSP':>3}  "
             f"block RAM"]
    lines += [f"{r['name']:<14} {r['device']:<22} {r['clock_mhz']:>4g} MHz  {r['luts']:>6}  "
              f"{b.dsps:>3}  {r['block_ram']}" + (f" + {b.spram} SPRAM" if b.spram else "")
              for r, b in zip(rows, BOARDS.values())]
    lines.append("build with: onespike build NET.npz --board NAME -o DIR (without --lanes "
                 "the planner takes the fastest lanes that fit the board)")
    _emit(args, {"boards": rows}, lines)


def cmd_build(args):
    from onespike.boards.build import BuildFailed, build
    from onespike.boards.platforms import board_named
    from onespike.ir import load

    board = board_named(args.board)
    if args.clock is not None and not 1 <= args.clock <= 400:
        raise OnespikeError(f"--clock must be in MHz, 1..400, not {args.clock}")
    if args.plan is not None:
        options, spent = _accelerator_args(load(args.net), args)
        lanes, firing, use_dsp, coding, membranes, encoder_banks = (
            options[k] for k in ("lanes", "firing", "use_dsp", "coding", "membranes",
                                 "encoder_banks"))
        if not options["skip_zeros"]:
            raise OnespikeError("a board's dense baseline skips zeros: build --plan takes no "
                                "plan with skip_zeros false")
    else:
        firing, use_dsp, coding = _firing(args), not args.no_dsp, args.coding
        membranes, encoder_banks = args.membranes, "auto"
        lanes, spent = (args.lanes, None) if args.lanes is None else _spend_lanes(
            load(args.net), args, {"coding": args.coding, "firing": firing})
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    if spent:
        log(spent)
    try:
        summary = build(args.net, board, args.output, lanes=lanes, baud=args.baud,
                        clock_mhz=args.clock, coding=coding, use_dsp=use_dsp,
                        firing=firing, membranes=membranes, encoder_banks=encoder_banks,
                        log=log)
    except BuildFailed as e:       # the tools ran: not a usage error
        print(f"onespike: {e}", file=sys.stderr)
        return 1
    lines = [f"{summary['bitstream']}: {board.name}, {summary['luts']} LUTs, "
             f"{summary['ffs']} FFs, {summary['bram']}/{board.blocks} block RAMs"
             + (f", {summary['spram']} SPRAM" if board.spram else "")
             + (f", {summary['dsp']} DSP" if summary["dsp"] else "")
             + (" (dense baseline)" if summary["coding"] == "dense" else ""),
             f"Fmax {summary['fmax_mhz']:.1f} MHz at a {summary['clock_mhz']:g} MHz clock: "
             f"timing met; UART {summary['baud']} baud, network {summary['checksum']}",
             f"report: {Path(args.output) / 'build.json'}; next: onespike run --build "
             f"{args.output} --port PORT --inputs X.npy"]
    _emit(args, summary, lines)


def cmd_run(args):
    from onespike.boards.host import BoardClient, run_inputs
    from onespike.boards.top import DEFAULT_BAUD
    from onespike.ir import load
    from onespike.sim.verify import EDGE_SAMPLES, stimulus

    baud, net, weights = args.baud, None, None
    if args.build is not None:
        report = Path(args.build) / "build.json"
        if not report.is_file():
            raise OnespikeError(f"{args.build} holds no build.json; give the folder written "
                                f"by `onespike build`")
        baud = baud or json.loads(report.read_text())["baud"]
        net = load(Path(args.build) / "network.npz")
        image = Path(args.build) / "weights.bin"
        weights = image.read_bytes() if image.is_file() else None
    if args.net is not None:
        net = load(args.net)
    x = _load_array(args.inputs, "inputs")
    if args.samples is not None:
        x = x[:args.samples]
    if net is not None:
        a0 = stimulus(net, x)[EDGE_SAMPLES:]
    elif x.dtype.kind not in "iu":
        raise OnespikeError("float inputs need the network to encode them: pass --net "
                            "NET.npz or --build DIR")
    else:
        a0 = x
    with BoardClient(args.port, baud=baud or DEFAULT_BAUD, timeout=args.timeout) as client:
        result = run_inputs(client, a0, net=net, weights=weights, spikes=args.spikes,
                            progress=not args.json)
    lines = [f"{result['samples']} samples in {result['seconds']:.2f} s "
             f"({result['samples_per_second']} samples/s over the UART), "
             f"{result['retries']} frames retried"]
    if result["weights_loaded_bytes"]:
        lines.insert(0, f"loaded {result['weights_loaded_bytes']} bytes of run-time weights")
    if args.labels is not None:
        labels = _load_array(args.labels, "labels", integer=True)[:len(a0)]
        result["accuracy"] = float(np.mean(np.array(result["classes"]) == labels))
        lines.append(f"accuracy {result['accuracy']:.4f} on {len(labels)} labelled samples")
    if result["golden_mismatches"] is not None:
        lines.append(f"golden model: {result['golden_mismatches']} of {result['samples']} "
                     f"answers differ")
    lines.append("classes: " + " ".join(str(c) for c in result["classes"][:20])
                 + (" ..." if result["samples"] > 20 else ""))
    _emit(args, result, lines)
    return 1 if result["golden_mismatches"] else 0


def _float_accuracy(args, x, labels):
    """The float model's accuracy for the report: ``--float-accuracy``, or measured with
    ``--model`` on ``--inputs``/``--labels``; None when neither is given."""
    from onespike.mapper import float_logits

    if args.model is not None and args.float_accuracy is not None:
        raise OnespikeError("give --model or --float-accuracy, not both")
    if args.float_accuracy is not None:
        if not 0 <= args.float_accuracy <= 1:
            raise OnespikeError(f"--float-accuracy is a fraction in [0, 1], not "
                                f"{args.float_accuracy}")
        return args.float_accuracy
    if args.model is None:
        return None
    if labels is None:
        raise OnespikeError("--model measures the float accuracy on --inputs and --labels; "
                            "give both")
    if not Path(args.model).is_file():
        raise OnespikeError(f"model file {args.model} does not exist")
    return float(np.mean(float_logits(args.model, x).argmax(axis=1) == labels))


def cmd_report(args):
    from onespike.ir import load
    from onespike.report import REPORT_LANES, write_report

    net = load(args.net)
    x = None if args.inputs is None else _load_array(args.inputs, "inputs")
    labels = None if args.labels is None else _load_array(args.labels, "labels", integer=True)
    if labels is not None and x is None:
        raise OnespikeError("--labels needs --inputs")
    if x is not None and args.samples is not None:
        x, labels = x[:args.samples], None if labels is None else labels[:args.samples]
    if args.measure < 0:
        raise OnespikeError(f"--measure must be 0 or more, not {args.measure}")
    float_accuracy = _float_accuracy(args, x, labels)
    result = write_report(net, args.output, x=x, labels=labels, lanes=args.lanes,
                          build_dirs=args.build or (), measure=args.measure,
                          float_accuracy=float_accuracy)
    _emit(args, result, [f"wrote {result['report']} and {len(result['figures'])} figures"])


def cmd_demo(args):
    from onespike.demo import run_demo, run_rnn_demo

    if args.rtl_samples < 1:
        raise OnespikeError(f"--rtl-samples must be a positive integer, not {args.rtl_samples}")
    if args.rnn:
        if args.board is not None:
            raise OnespikeError("--board applies to the MLP demo, not --rnn")
        result, lines = run_rnn_demo(Path(args.out) / "rnn", act_bits=args.act_bits,
                                     weight_bits=args.weight_bits, simulator=args.sim,
                                     rtl_samples=args.rtl_samples, progress=not args.json)
        _emit(args, result, lines)
        return 1 if result["rtl_mismatches"] else 0
    board = None
    if args.board is not None:
        from onespike.boards.platforms import board_named
        board = board_named(args.board)
    result, lines = run_demo(Path(args.out), act_bits=args.act_bits,
                             weight_bits=args.weight_bits, simulator=args.sim,
                             rtl_samples=args.rtl_samples, board=board,
                             progress=not args.json)
    _emit(args, result, lines)
    return 1 if result["rtl_mismatches"] else 0


def cmd_prove(args):
    from onespike.ir import load
    from onespike.sim.formal import prove

    net = load(args.net)

    def progress(r):
        if not args.json:
            print(f"  {r['core']:<28} {r['property']:<9} {r['status']:<8} depth {r['depth']:>3} "
                  f"{r['seconds']:6.1f} s" + (f"  trace {r['trace']}" if r.get("trace") else ""),
                  file=sys.stderr, flush=True)

    result = prove(net, lanes=args.lanes, depth=args.depth, out=args.out, jobs=args.jobs,
                   only=args.only, progress=progress)
    lines = [f"{result['checks']} checks in {result['seconds']:.0f} s: {result['proven']} proven "
             f"by induction, {result['bounded']} bounded (BMC to the depth shown), "
             f"{result['failed']} failed, {result['errors']} errors; sby folders under "
             f"{result['folder']}"]
    lines += [f"FAILED {r['core']} {r['property']}: counterexample {r.get('trace')}"
              for r in result["properties"] if r["status"] == "failed"]
    _emit(args, result, lines)
    return 1 if result["failed"] or result["errors"] else 0


def _bits(value):
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None


def _input_bits(value):
    return value if value == "auto" else _bits(value)


FINETUNE_HELP = {
    "epochs": "passes over the training samples",
    "lr": "Adam learning rate, in units of the weight range, cosine decay (default: 0.1 / "
          "steps per epoch, within 2e-4..5e-3)",
    "batch": "samples per step",
    "spike_weight": "weight of the spike penalty (mean activation of hidden neurons)",
    "held_out": "share of the samples that scores each epoch instead of training",
    "seed": "seed of the held-out draw and the batch order",
}


def _default(function, name):
    """The library's default for ``name``: written once, in the function's signature."""
    return inspect.signature(function).parameters[name].default


def _add_command(sub, name, func, help_text, description):
    """A subcommand ``name`` running ``func``, with ``--json``."""
    p = sub.add_parser(name, help=help_text, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout instead of a report")
    return p


def _add_bits(p, function):
    p.add_argument("--act-bits", type=_bits, default=_default(function, "act_bits"),
                   metavar="N",
                   help="activation bits 1..8: each layer fires in a window of 2**N-1 "
                        "time steps (default %(default)s)")
    p.add_argument("--weight-bits", type=_bits, default=_default(function, "weight_bits"),
                   metavar="N",
                   help="signed weight bits 2..16 (default %(default)s)")


def _convert_command(sub):
    from onespike.mapper import convert_exported

    p = _add_command(sub, "convert", cmd_convert, "map a torch.export program (.pt2) or an ONNX model "
            "(.onnx) to a TTFS network",
            "Map a trained ReLU network, saved with torch.export.save(torch.export.export("
            "model.eval(), (example,)), 'model.pt2') or exported to ONNX (.onnx: "
            "torch.onnx.export, tf2onnx, ...; needs the onnx extra), to an integer TTFS "
            "network (.npz).\n"
            "The calibration array (.npy, shape (samples, *input_shape)) holds representative "
            "inputs exactly as the model sees them; it sets every scale.")
    p.add_argument("model", help="torch.export program (.pt2; loaded without unpickling) "
                   "or ONNX model (.onnx; read, never run)")
    p.add_argument("--calib", required=True, help="calibration inputs (.npy)")
    p.add_argument("-o", "--output", required=True, type=Path, help="network file to write "
                   "(.npz: arrays + JSON header, see onespike/ir.py)")
    _add_bits(p, convert_exported)
    p.add_argument("--input-bits", type=_input_bits, default="auto", metavar="N",
                   help="bits 1..8 of the input window, or auto (default): the fewest from "
                        "--act-bits up whose rounding changes no more of the float network's "
                        "classes on the calibration data than 8 bits (measured, said in a "
                        "note); a finer input for networks whose hidden layers use few steps")
    p.add_argument("--recalibrate", action="store_true",
                   help="a quantized ONNX model (QONNX, QCDQ) whose quantizers cannot be held "
                        "exactly: replace them by onespike's own calibration (bits from the "
                        "model unless given) instead of refusing")


def _finetune_command(sub):
    from onespike.mapper.finetune import finetune

    p = _add_command(sub, "finetune", cmd_finetune, "fine-tune a converted network as the integer network",
            "Train a converted network (.npz from `onespike convert`) as the exact integer "
            "network it is: integer weights and biases learned through straight-through "
            "rounding, scales, ramps and windows kept, so the file written runs unchanged "
            "in the golden model, the RTL and on the board. A share of the samples "
            "(--held-out) scores each epoch; the epoch with the lowest held-out loss is kept "
            "(the plain conversion included). --spike-weight trades accuracy for fewer "
            "spikes. "
            "To train at other bits, convert at those bits first (--act-bits, "
            "--input-bits).\n\nexample: onespike finetune net.npz --data x.npy --labels "
            "y.npy --epochs 20 -o tuned.npz")
    p.add_argument("net", help="network file (.npz) from `onespike convert`")
    p.add_argument("--data", required=True, help="training inputs (.npy), as fed to the model")
    p.add_argument("--labels", required=True, help="integer labels (.npy), one per input")
    p.add_argument("-o", "--output", required=True, type=Path, help="tuned network (.npz)")
    for name, kind in (("epochs", int), ("lr", float), ("batch", int),
                       ("spike_weight", float), ("held_out", float), ("seed", int)):
        default = _default(finetune, name)
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default,
                       help=FINETUNE_HELP[name] + ("" if default is None
                                                   else " (default %(default)s)"))
    p.add_argument("--keep", choices=("best", "last"), default=_default(finetune, "keep"),
                   help="which epoch's network to write (default %(default)s)")
    p.add_argument("--weight-bits", type=_bits, metavar="N",
                   help="signed weight bits while training (default: the network's own)")


def _info_command(sub):
    p = _add_command(sub, "info", cmd_info, "show a network's layers, time windows and register widths",
            "Show a network file's layers, time windows, ramps and register widths.")
    p.add_argument("net", help="network file (.npz) from `onespike convert`")


def _export_command(sub):
    p = _add_command(sub, "export", cmd_export, "write the integer network as an ONNX graph (exact, int64)",
            "Write a network file as a standard ONNX graph in int64 arithmetic (MatMul, "
            "floor division by the ramp, clip), so that another engine (onnxruntime, ...) "
            "checks the integer network: its logits and classes equal the golden model's "
            "bit for bit. Needs the onnx extra.\n\nexample: onespike export net.npz -o "
            "net.onnx --encoder")
    p.add_argument("net", help="network file (.npz) from `onespike convert`")
    p.add_argument("-o", "--output", required=True, type=Path, help="ONNX file to write")
    p.add_argument("--encoder", action="store_true",
                   help="take float64 inputs x as the model does and encode them in the graph "
                        "(default: take the integer activations a0 = net.encoder.encode(x))")


def _simulate_command(sub):
    from onespike.sim.evaluate import MODES, evaluate

    p = _add_command(sub, "simulate", cmd_simulate, "run the golden model on inputs, report accuracy",
            "Run the golden model: by default the event-by-event simulation of the neuron "
            "dynamics (current, membrane, ramp), or the closed-form quantized network with "
            "--mode closed (identical results, faster).")
    p.add_argument("net", help="network file (.npz)")
    p.add_argument("--inputs", required=True, help="float inputs (.npy), as fed to the model")
    p.add_argument("--labels", help="integer labels (.npy) to report accuracy")
    p.add_argument("--mode", choices=MODES, default=_default(evaluate, "mode"),
                   help="event simulation or closed form (default %(default)s)")
    codes = ("ttfs", "rate", "rate-bipolar")
    p.add_argument("--code", choices=codes, default="ttfs",
                   help="the spike code simulated: ttfs, one spike per neuron, as the "
                        "accelerator (default); rate, rate-bipolar: for comparison, the same "
                        "integer network with integrate-and-fire neurons (reset by "
                        "subtraction) over --steps T; bipolar neurons undo over-firing with "
                        "negative spikes")
    p.add_argument("--coding", choices=codes, dest="old_coding", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, metavar="T",
                   help="--code rate: time steps (default: A of the first hidden layer, "
                        "where the first layer is exact)")
    p.add_argument("--batch", type=int, default=_default(evaluate, "batch"),
                   help="samples per batch (default %(default)s)")
    p.add_argument("--predictions", type=Path, help="write the predicted classes (.npy)")


def _generate_command(sub):
    from onespike.hdl.generate import generate

    p = _add_command(sub, "generate", cmd_generate, "generate the accelerator's Verilog and manifest",
            "Generate the TTFS accelerator for a network (conv, max-pool, dense layers; a dense "
            "readout): DIR/onespike_top.v (top module "
            "onespike_top, ports described in the README and in DIR/manifest.json) and "
            "DIR/manifest.json (ports, widths, memories, lanes, firing). The same inputs "
            "give the "
            "same bytes.")
    _add_accelerator(p, _default(generate, "lanes"), "neurons (dense) or output channels "
                     "(conv) updated per cycle")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")


def _plan_command(sub):
    from onespike.hdl.generate import generate

    p = _add_command(sub, "plan", cmd_plan, "show the accelerator generate would build, without building it",
            "Resolve the accelerator's options (lanes spent by work, firing chosen per "
            "layer) and show what they build: per layer its lanes, firing, weight memory, "
            "state bits and multipliers; memory totals; cycles if every neuron spikes. "
            "With --json the plan is plain data: save it, edit it if you like (lanes or "
            "firing of a layer), and `generate` or `verify` it with --plan FILE to build "
            "exactly that accelerator.\n\nexample: onespike plan net.npz --lanes 8 --json > "
            "plan.json && onespike generate net.npz --plan plan.json -o rtl/")
    _add_accelerator(p, _default(generate, "lanes"), "neurons (dense) or output channels "
                     "(conv) updated per cycle")
    p.add_argument("--board", metavar="NAME",
                   help="plan for this board as `build` does (without --lanes the "
                        "planner's lanes): adds the LUT estimate, block RAM, SPRAM and DSP "
                        "use against the board's limits; `build --plan` builds it")


def _verify_command(sub):
    from onespike.sim.verify import BENCHES, EDGE_SAMPLES, RANDOM_SAMPLES, SIMULATORS, verify

    p = _add_command(sub, "verify", cmd_verify, "run the cocotb regression: RTL against the golden model",
            "Simulate the generated Verilog (Icarus or Verilator, through cocotb) and compare "
            "every layer's spike times, the logits and the classes with the golden model, "
            "sample by sample, with random idle cycles on the input and backpressure on the "
            "output. The stimulus starts with an all-zero and a saturated sample, then the "
            "--inputs (or random activations). Exit status 0 only with zero mismatches, 1 "
            "when the RTL differs (the first mismatch is reported), 2 on errors. Build "
            "folders, JUnit XML (results.xml) and waves go under --build-dir.")
    p.add_argument("net", help="network file (.npz)")
    p.add_argument("--rtl", type=Path, metavar="DIR",
                   help="folder from `onespike generate` to verify (default: generate one "
                        "with --lanes)")
    _add_accelerator(p, _default(verify, "lanes"), "lanes when generating", net=False)
    p.add_argument("--sim", choices=SIMULATORS, default=_default(verify, "simulator"),
                   help="simulator (default %(default)s)")
    p.add_argument("--inputs", help="float inputs (.npy), as fed to the model")
    p.add_argument("--samples", type=int, metavar="N",
                   help=f"check the first N of --inputs (default: all; {RANDOM_SAMPLES} "
                        f"random samples without --inputs); the {EDGE_SAMPLES} edge samples "
                        f"come on top")
    p.add_argument("--waves", action="store_true", help="record an FST waveform (GTKWave)")
    p.add_argument("--idle", type=float, default=_default(verify, "idle"),
                   help="probability of an idle input cycle (default %(default)s)")
    p.add_argument("--backpressure", type=float, default=_default(verify, "backpressure"),
                   help="probability the output is not ready in a cycle (default "
                        "%(default)s)")
    p.add_argument("--reset-after", type=int, default=_default(verify, "interrupt_cycles"),
                   metavar="CYCLES",
                   help="first stream random samples for CYCLES cycles and reset the design "
                        "in the middle of that inference (default %(default)s: no reset)")
    p.add_argument("--seed", type=int, default=_default(verify, "seed"),
                   help="stimulus seed (default %(default)s)")
    p.add_argument("--jobs", type=int, default=_default(verify, "jobs"), metavar="N",
                   help="simulator processes, each on a slice of the samples, one build; "
                        "results and JUnit files merged (default %(default)s)")
    p.add_argument("--shard", metavar="K/N",
                   help="run only slice K of N (1 <= K <= N) of the samples, for a CI "
                        "matrix or a job array; the slices of 1/N .. N/N hold every sample "
                        "once")
    p.add_argument("--bench", choices=BENCHES, default=_default(verify, "bench"),
                   help="harness: the Verilog harness drives and logs, Python checks at the "
                        "end; classic: Python drives and monitors every cycle (slow) "
                        "(default %(default)s)")
    p.add_argument("--build-dir", default=_default(verify, "build_root"),
                   help="build folders (default %(default)s)")


def _boards_command(sub):
    p = _add_command(sub, "boards", cmd_boards, "list the supported FPGA boards",
            "List the boards `onespike build` supports, with their device, clock and "
            "resources.")


def _build_command(sub):
    from onespike.boards.build import build
    from onespike.boards.top import DEFAULT_BAUD
    from onespike.hdl.generate import CODINGS

    p = _add_command(sub, "build", cmd_build, "build a bitstream for a board (open-source tools)",
            "Build a bitstream of the accelerator behind a UART host link for a board, with "
            "the YoWASP yosys/nextpnr from PyPI (no vendor tool). Writes DIR/onespike.{bin,"
            "bit,fs}, DIR/network.npz and DIR/build.json (utilisation, Fmax, lanes, baud). "
            "A network whose memories cannot fit is refused before synthesis; a place-and-"
            "route failure or missed timing exits with status 1.\n\nexample: onespike build "
            "net.npz --board ulx3s-85f --lanes 8 --clock 50 -o bit/")
    p.add_argument("net", help="network file (.npz)")
    p.add_argument("--board", required=True, metavar="NAME",
                   help="board name (see `onespike boards`)")
    _add_lanes(p, None, "neurons updated per cycle (default: the planner's choice, the "
               "fastest that fits the board)")
    p.add_argument("--clock", type=float, metavar="MHZ",
                   help="clock in MHz: a PLL makes it from the board's oscillator (iCE40, "
                        "ECP5; default: the oscillator's, see `onespike boards`)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help="UART baud rate (default %(default)s)")
    p.add_argument("--coding", choices=tuple(CODINGS), default=_default(build, "coding"),
                   help="ttfs: the spiking accelerator; dense: the multiply-accumulate "
                        "baseline of the same network behind the same link, for a "
                        "side-by-side build (default %(default)s)")
    p.add_argument("--no-dsp", action="store_true",
                   help="the lane multiplies from shifted adds, no DSP blocks (default: "
                        "DSP blocks where the board has enough for the planned lanes: "
                        "dense one per lane, TTFS two per hidden lane and one per readout "
                        "lane; TTFS falls back to shifted adds when they do not fit)")
    _add_firing(p)
    _add_membranes(p)
    _add_plan(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")


def _run_command(sub):
    from onespike.boards.top import DEFAULT_BAUD
    from onespike.boards.host import BoardClient

    p = _add_command(sub, "run", cmd_run, "classify inputs on a board over its UART",
            "Stream inputs to a board built by `onespike build` and print its classes and "
            "throughput. With --build DIR (or --net) the board's network checksum is checked, "
            "float inputs are encoded, and every answer is compared with the golden model "
            "(exit status 1 on any difference).\n\nexample: onespike run --build bit/ --port "
            "/dev/ttyUSB1 --inputs x_test.npy --labels y_test.npy")
    p.add_argument("--port", required=True, help="serial device (e.g. /dev/ttyUSB1)")
    p.add_argument("--inputs", required=True, help="inputs (.npy): floats as fed to the "
                   "model, or integer activations when no network is given")
    p.add_argument("--build", metavar="DIR", help="folder written by `onespike build`")
    p.add_argument("--net", help="network file (.npz) the board must hold")
    p.add_argument("--labels", help="integer labels (.npy) to report accuracy")
    p.add_argument("--samples", type=int, help="only the first N inputs")
    p.add_argument("--spikes", action="store_true",
                   help="also read back the last spiking layer's spike times")
    p.add_argument("--baud", type=int,
                   help=f"baud rate (default: the build's, or {DEFAULT_BAUD})")
    p.add_argument("--timeout", type=float, default=_default(BoardClient, "timeout"),
                   help="seconds to wait for an answer (default %(default)s)")


def _report_command(sub):
    from onespike.report import REPORT_LANES, write_report

    p = _add_command(sub, "report", cmd_report, "write a Markdown report with figures about a network",
            "Write DIR/report.md and DIR/figures/*.png: the network and its accuracy, a "
            "spike raster of one sample through every layer, spikes per neuron, operations "
            "per inference (TTFS additions, dense multiply-accumulates, rate-coded spikes), "
            "cycles per stage (measured, modelled, lower bound), the board builds given, and "
            "an energy estimate with its sources.\n\nexample: onespike report net.npz "
            "--inputs x_test.npy --labels y_test.npy --build bit/ -o report/")
    p.add_argument("net", help="network file (.npz)")
    p.add_argument("--inputs", help="float inputs (.npy), as fed to the model (default: "
                   "random activations)")
    p.add_argument("--labels", help="integer labels (.npy) for the accuracy section")
    p.add_argument("--model", metavar="FILE",
                   help="the float model the network came from (.pt2 or .onnx, as given to "
                        "convert): its accuracy on --inputs/--labels fills the float row")
    p.add_argument("--float-accuracy", type=float, metavar="A",
                   help="the float model's accuracy as a fraction, for the float row "
                        "(instead of --model)")
    p.add_argument("--samples", type=int, metavar="N", help="only the first N inputs")
    p.add_argument("--lanes", type=int, metavar="P",
                   help=f"lanes for the cycle figures (default {REPORT_LANES}, at most the "
                        f"largest layer's neurons)")
    p.add_argument("--measure", type=int, default=_default(write_report, "measure"),
                   metavar="N",
                   help="samples run in the Amaranth simulator for measured cycles "
                        "(default %(default)s; 0: none)")
    p.add_argument("--build", action="append", type=Path, metavar="DIR",
                   help="a folder written by `onespike build` (repeat for several)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")


def _demo_command(sub):
    from onespike.demo import run_demo
    from onespike.sim.verify import SIMULATORS

    p = _add_command(sub, "demo", cmd_demo, "the whole flow on built-in data: train, convert, verify, report",
            "Train a small MLP on scikit-learn's 8x8 digits, convert it, report float, "
            "quantized and spiking accuracy, generate the Verilog, verify it spike for spike "
            "against the golden model on a real simulator, and write a report with figures. "
            "Writes its files under --out.\n\nexample: onespike demo --board icebreaker")
    p.add_argument("--out", default=_default(run_demo, "out"),
                   help="output folder (default %(default)s)")
    p.add_argument("--sim", choices=SIMULATORS, default=_default(run_demo, "simulator"),
                   help="simulator for the RTL check (default %(default)s)")
    p.add_argument("--rtl-samples", type=int, default=_default(run_demo, "rtl_samples"),
                   metavar="N",
                   help="test images verified in RTL (default %(default)s)")
    p.add_argument("--board", metavar="NAME", help="also build a bitstream for this board "
                   "(see `onespike boards`)")
    p.add_argument("--rnn", action="store_true",
                   help="instead: a ReLU RNN reading the digits row by row (8 steps of 8 "
                        "pixels), trained on the integer grid, converted, run as a spiking "
                        "network and rate-coded; files under OUT/rnn")
    _add_bits(p, run_demo)


def _prove_command(sub):
    from onespike.sim.formal import prove

    p = _add_command(sub, "prove", cmd_prove, "prove the cores' stream, counting, width and reset properties",
            "For every core of the generated design (encoder, neuron cores, max pooling, "
            "argmax) prove properties written in Amaranth with SymbiYosys (YoWASP tools, the "
            "PyPI yices solver): stream rules on every port, at most one spike per neuron, "
            "steps in order, exactly A markers per window, no register overflow for any "
            "input, ready within the reset bound. Each check is tried by k-induction "
            "(proven) and otherwise bounded (BMC to --depth cycles after a reset). Exit "
            "status 1 if a property fails (its counterexample VCD is listed).\n\nexample: "
            "onespike prove net.npz --lanes 2 --json")
    p.add_argument("net", help="network file (.npz)")
    p.add_argument("--lanes", type=int, default=_default(prove, "lanes"), metavar="P",
                   help="lanes per neuron core (default %(default)s)")
    p.add_argument("--depth", type=int, metavar="N",
                   help="cycles after a reset to check (default: per core, one sample through it)")
    p.add_argument("--jobs", type=int, default=_default(prove, "jobs"), metavar="J",
                   help="checks run at once (default %(default)s)")
    p.add_argument("--only", action="append", metavar="PROP",
                   help="only this property (e.g. once) or core:property (e.g. encoder:once); "
                        "repeat for several")
    p.add_argument("--out", default=_default(prove, "out"), type=Path,
                   help="folder for the sby runs and traces (default %(default)s)")


COMMANDS = (_convert_command, _finetune_command, _info_command, _export_command, _simulate_command, _generate_command, _plan_command, _verify_command, _boards_command, _build_command, _run_command, _report_command, _demo_command, _prove_command)
"""One function per subcommand, in the order ``--help`` lists them."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="onespike", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn a trained ReLU network into an exact time-to-first-spike (TTFS) "
                    "network: one spike per neuron, bit-exact with the quantized network.",
        epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except OnespikeError as e:
        print(f"onespike: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("onespike: interrupted", file=sys.stderr)
        return 130
    except Exception as e:          # a bug: one line for the user, the traceback on request
        if os.environ.get("ONESPIKE_DEBUG"):
            raise
        print(f"onespike: internal error: {type(e).__name__}: {str(e)[:300]} (a bug; please "
              f"report it with the command; ONESPIKE_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 3
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
