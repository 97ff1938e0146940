"""``onespike generate``: Verilog and a manifest from a network file, reproducibly."""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from onespike.hdl.toolchain import find_yosys   # the adapter to Amaranth's builtin yosys
from amaranth.back import rtlil
from amaranth.hdl import Shape, Value
from amaranth.lib import data, wiring

from onespike.errors import OnespikeError
from onespike.hdl.cycles import cycle_estimate
from onespike.hdl.dense_cycles import dense_cycle_estimate
from onespike.hdl.dense_top import DenseAccelerator
from onespike.hdl.firing import FIRINGS
from onespike.hdl.mac import ActivationPoolSizes
from onespike.hdl.maxpool import MaxPoolSizes
from onespike.hdl.plan import AcceleratorPlan, DensePlan
from onespike.hdl.top import Accelerator, LayerPipeline
from onespike.ir import Network

__all__ = ["generate", "TOP_NAME", "CODINGS", "accelerator", "check_firing", "plan",
           "plan_options", "PLAN_FORMAT", "interface_markdown"]

#: ``coding`` → (accelerator class, payload fields of ``tap_<n>``)
CODINGS = {"ttfs": (Accelerator, ["index", "step", "end"]),
           "dense": (DenseAccelerator, ["index", "value", "end"])}


def check_membranes(coding, membranes):
    """Refuse single-port membranes for the dense coding (it has none)."""
    if coding == "dense" and membranes not in ("auto", "dual"):
        raise OnespikeError(f"membranes {membranes!r} apply to the ttfs coding only: the dense "
                            f"coding has no membranes (leave membranes 'dual')")


def check_firing(coding, firing):
    """Refuse a ``coding`` not in :data:`CODINGS`, a ``firing`` not in
    :data:`~onespike.hdl.firing.FIRINGS`, and any ``firing`` but ``"auto"`` for the dense
    coding (it has no firing phase)."""
    if coding not in CODINGS:
        raise OnespikeError(f"coding must be one of {', '.join(CODINGS)}, not {coding!r}")
    if not isinstance(firing, str) and coding == "ttfs":
        return                                  # one per layer: the accelerator checks it
    if firing not in FIRINGS:
        raise OnespikeError(f"firing must be one of {', '.join(FIRINGS)}, not {firing!r}")
    if coding == "dense" and firing != "auto":
        raise OnespikeError(f"firing {firing!r} applies to the ttfs coding only: the dense "
                            f"coding has no firing phase (leave firing 'auto')")


def accelerator(net: Network, *, lanes=1, coding="ttfs", skip_zeros=True, use_dsp=True,
                firing="auto", membranes="dual", encoder_banks=2, sizes=False):
    """The accelerator for ``coding``: ``"ttfs"`` (:class:`~onespike.hdl.top.Accelerator`,
    with ``use_dsp`` and ``firing``) or ``"dense"``
    (:class:`~onespike.hdl.dense_top.DenseAccelerator`, with ``skip_zeros`` and
    ``use_dsp``; it has no firing phase, so ``firing`` must stay ``"auto"``, nor
    membranes, so ``membranes`` must stay ``"dual"``). With ``sizes``: its plan alone
    (:class:`~onespike.hdl.plan.AcceleratorPlan`, :class:`~onespike.hdl.plan.DensePlan`),
    every size and no component."""
    check_firing(coding, firing)
    check_membranes(coding, membranes)
    if coding == "dense":
        if encoder_banks != 2:
            raise OnespikeError("encoder_banks applies to the ttfs coding only")
        if not isinstance(use_dsp, bool):
            raise OnespikeError("use_dsp per layer applies to the ttfs coding only")
        return (DensePlan if sizes else DenseAccelerator)(
            net, lanes=lanes, skip_zeros=skip_zeros, use_dsp=use_dsp)
    return (AcceleratorPlan if sizes else Accelerator)(
        net, lanes=lanes, use_dsp=use_dsp, firing=firing, membranes=membranes,
        encoder_banks=encoder_banks)

TOP_NAME = "onespike_top"

#: What each port means, per coding: enough to drive and check the top without reading
#: the code (docs/accelerator.md, generated from it). ``{n}`` is the layer a tap feeds.
PORT_MEANING = {
    "clk": "clock; everything is synchronous to its rising edge",
    "rst": "synchronous reset, active high; the next sample starts clean; afterwards wait "
           "for i__ready (see i)",
    "i": "input stream: one sample's activations 0..A0 (A0 = input_levels), one per "
         "transfer, in C order: input neuron 0, 1, ... for a vector; for an image (c, y, x) "
         "with x fastest, then y, then c (x.reshape(-1) of a (C, H, W) array); the next "
         "sample follows directly. A transfer happens in a cycle with i__valid and i__ready "
         "both high. {reset}",
    "o": "class of each sample, in input order (argmax of the integer logits, ties to the "
         "lowest; stream)",
    "tap_logits": "observe-only: each logit {index, value, last} the readout sends; last = 1 "
                  "on the final class of a sample",
}
RESET = {
    "ttfs": "After rst, i__ready stays low for at most A0 + 2 cycles (the encoder empties "
            "its lists); inner stages take longer but hold the stream before them, so a "
            "testbench waits for i__ready only",
    "dense": "After rst, i__ready stays low until the first layer has cleared its state "
             "(layers[0].state_words + 1 cycles for a dense or convolution layer); inner "
             "stages hold the stream before them, so a testbench waits for i__ready only",
}
TAP_MEANING = {
    "ttfs": "observe-only: each transfer {{index, step, end}} on the spike stream into layer "
            "{n}, valid for one cycle: per sample the spikes of step 0, an end-of-step marker "
            "(end = 1), the spikes of step 1, a marker, ... A markers in all (A = "
            "input_window[1] - input_window[0] of layers[{n}]). A spike's index is the neuron "
            "(a number for a vector, {{x, y, c}} for an image) and step its step 0..A-1 (the "
            "golden model's time input_window[0] + step); a marker's step is the step it closes (A - 1 ends the sample) and its index is 0. "
            "Every bit of a valid transfer is defined (never X); neurons of activation 0 send "
            "nothing",
    "dense": "observe-only: each transfer {{index, value, end}} on the activation stream into "
             "layer {n}, valid for one cycle (decoding: taps)",
}
DENSE_TAPS = {
    "decode": "per sample, each tap_<n> transfer with end = 0 sets activation "
              "'value' of neuron 'index' (C-order c*H*W + y*W + x for {x, y, c}); "
              "neurons not sent have activation 0; the transfer with end = 1 ends "
              "the sample (exactly one per sample and tap)",
    "order": "any; each neuron at most once per sample",
}
"""How a dense-coding tap decodes (the manifest's ``taps``)."""


def interface_markdown() -> str:
    """The ports of ``onespike_top`` for each coding as ``docs/accelerator.md`` lists them:
    the text every manifest's ``ports[].meaning`` holds (``<n>``: a layer's index), and the
    dense taps' decoding. The document's generated part is this, checked by a test."""
    lines = []
    for coding in CODINGS:
        rows = [("clk", "in", PORT_MEANING["clk"]), ("rst", "in", PORT_MEANING["rst"]),
                ("i__payload, i__valid, i__ready", "in, in, out",
                 PORT_MEANING["i"].format(reset=RESET[coding])),
                ("o__payload, o__valid, o__ready", "out, out, in", PORT_MEANING["o"]),
                ("tap_<n>__payload, tap_<n>__valid", "out, out (no ready: a tap never "
                 "holds the design)", TAP_MEANING[coding].format(n="<n>")),
                ("tap_logits__payload, tap_logits__valid", "out, out",
                 PORT_MEANING["tap_logits"])]
        lines += [f"### Ports, `{coding}` coding", "", "| port | direction | meaning |",
                  "|---|---|---|"]
        lines += [f"| `{name}` | {direction} | {meaning.replace('|', '/')} |"
                  for name, direction, meaning in rows]
        if coding == "dense":
            lines += ["", f"A dense tap decodes {DENSE_TAPS['decode']}; order: "
                          f"{DENSE_TAPS['order']}."]
        lines.append("")
    return "\n".join(lines)


def _fields(layout: data.StructLayout) -> dict:
    """Offset, width and signedness of every field, nested structs with their own fields."""
    out = {}
    for name, field in layout:
        entry = {"offset": field.offset, "width": field.width,
                 "signed": Shape.cast(field.shape).signed}
        if isinstance(field.shape, data.StructLayout):
            entry["fields"] = _fields(field.shape)
        out[name] = entry
    return out


def _ports(top):
    coding = "dense" if isinstance(top, DensePlan) else "ttfs"
    ports = [{"name": "clk", "direction": "in", "width": 1, "meaning": PORT_MEANING["clk"]},
             {"name": "rst", "direction": "in", "width": 1, "meaning": PORT_MEANING["rst"]}]
    for path, member, value in top.signature.flatten(top):
        name = "__".join(str(p) for p in path)
        group = str(path[0])
        meaning = PORT_MEANING.get(group) or TAP_MEANING[coding].format(n=group[len("tap_"):])
        if group == "i":
            meaning = meaning.format(reset=RESET[coding])
        port = {"name": name, "direction": "in" if member.flow == wiring.In else "out",
                "width": Value.cast(value).shape().width, "meaning": meaning}
        if isinstance(member.shape, data.StructLayout):
            port["fields"] = _fields(member.shape)
        ports.append(port)
    return ports


def _memory_totals(top, layers) -> dict:
    """Memory bits by kind, for sizing against a board's block RAM."""
    totals = {"weights": sum(l["weight_memory"]["bits"] for l in layers if "weight_memory" in l),
              "neuron_state": sum(l.get("state_memory_bits", 0) for l in layers),
              "maxpool_fired": sum(l.get("fired_memory_bits", 0) for l in layers),
              "encoder": top.encoder.memory_bits}
    totals["total"] = sum(totals.values())
    return totals


def manifest(top, verilog_name: str, verilog_text: str) -> dict:
    """What ``generate`` writes beside the Verilog of ``top`` (an accelerator, or its plan:
    then without ``ports``)."""
    if isinstance(top, DensePlan):
        return _dense_manifest(top, verilog_name, verilog_text)
    net = top.net
    starts = net.window_starts()
    layers = []
    for n, (core, widths) in enumerate(zip(top.cores, net.widths())):
        layer = net.layers[n]
        entry = {"index": n, "kind": layer.kind, "readout": layer.is_readout,
                 "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
                 "inputs": core.inputs,
                 "input_window": [starts[n], starts[n] + net.in_levels(n)]}
        if net.per_step(n):
            entry["input_steps"] = net.steps
        if isinstance(core, MaxPoolSizes):
            entry.update(kernel=layer.kernel, stride=layer.stride, padding=layer.padding,
                         fired_memory_bits=core.fired_memory_bits)
        else:
            entry.update({
                "neurons": int(np.prod(layer.out_shape)), "lanes": core.lanes,
                "groups": core.groups, "state_words": core.words,
                "cycles_per_input_spike": core.fan_out,
                "levels": layer.levels, "weight_bits": core.weight_bits,
                "weight_memory": {"depth": len(core.weight_contents),
                                  "width": core.lanes * core.weight_bits,
                                  "bits": core.weight_memory_bits},
                "current_bits": widths.current_bits, "membrane_bits": widths.membrane_bits,
                "multipliers": core.multipliers,
                "state_memory_bits": core.state_memory_bits})
        entry["firing"] = top.firing[n]
        entry["membranes"] = top.membranes[n]
        layers.append(entry)
    worst = cycle_estimate(top)
    return {
        "top": TOP_NAME, "coding": "ttfs", "tap_payload": CODINGS["ttfs"][1],
        "use_dsp": top.use_dsp, "verilog": [verilog_name],
        "verilog_sha256": hashlib.sha256(verilog_text.encode()).hexdigest(),
        "ports": _ports(top) if isinstance(top, LayerPipeline) else None,
        "input_neurons": top.encoder.neurons, "input_levels": top.encoder.levels,
        "encoder_memory_bits": top.encoder.memory_bits, "encoder_banks": top.encoder.banks,
        "classes": net.num_classes, "latency_steps": net.latency_steps,
        "sequence_steps": net.steps, "layers": layers,
        "memory_bits": _memory_totals(top, layers),
        "cycles": {
            "every_neuron_spiking": worst,
            "note": "cycles per sample if every neuron spikes (the most work a sample can "
                    "bring); 'steady' is the spacing of results when samples stream back to "
                    "back, 'latency' one sample alone. onespike.hdl.cycles.cycle_estimate "
                    "gives the counts for measured spike numbers.",
        },
    }


def _dense_manifest(top: DensePlan, verilog_name: str, verilog_text: str) -> dict:
    net = top.net
    starts = net.window_starts()     # the golden time base a testbench decodes into
    layers = []
    for n, core in enumerate(top.cores):
        layer = net.layers[n]
        entry = {"index": n, "kind": layer.kind, "readout": layer.is_readout,
                 "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
                 "inputs": core.inputs, "in_levels": net.in_levels(n),
                 "input_window": [starts[n], starts[n] + net.in_levels(n)],
                 "cycles_per_input_activation": core.fan_out}
        if isinstance(core, ActivationPoolSizes):
            entry.update(kernel=layer.kernel, stride=layer.stride, padding=layer.padding,
                         state_memory_bits=core.state_memory_bits)
        else:
            entry.update({
                "neurons": int(np.prod(layer.out_shape)), "lanes": core.lanes,
                "groups": core.groups, "state_words": core.words,
                "levels": layer.levels, "weight_bits": core.weight_bits,
                "weight_memory": {"depth": len(core.weight_contents),
                                  "width": core.lanes * core.weight_bits,
                                  "bits": core.weight_memory_bits},
                "accumulator_bits": core.accumulator_bits, "multipliers": core.multipliers,
                "requantize_cycles_per_word": 0 if layer.is_readout else 1 + layer.act_bits,
                "state_memory_bits": core.state_memory_bits})
        layers.append(entry)
    totals = {"weights": sum(l["weight_memory"]["bits"] for l in layers
                             if "weight_memory" in l),
              "accumulators": sum(l["state_memory_bits"] for l in layers
                                  if "weight_memory" in l),
              "maxpool": sum(l["state_memory_bits"] for l in layers
                             if "weight_memory" not in l)}
    totals["total"] = sum(totals.values())
    return {
        "top": TOP_NAME, "coding": "dense", "tap_payload": CODINGS["dense"][1],
        "skip_zeros": top.skip_zeros, "use_dsp": top.use_dsp,
        "verilog": [verilog_name],
        "verilog_sha256": hashlib.sha256(verilog_text.encode()).hexdigest(),
        "ports": _ports(top) if isinstance(top, LayerPipeline) else None,
        "input_neurons": top.encoder.neurons, "input_levels": top.encoder.levels,
        "classes": net.num_classes, "layers": layers,
        "memory_bits": totals,
        "taps": dict(DENSE_TAPS),
        "cycles": {
            "every_neuron_active": dense_cycle_estimate(top),
            "note": "cycles per sample if every activation is non-zero (the most work a "
                    "sample can bring; also the cost of every sample with skip_zeros "
                    "false); onespike.hdl.dense_cycles.dense_cycle_estimate gives the "
                    "counts for measured activation numbers.",
        },
    }


def to_verilog(top) -> str:
    """Verilog for ``top`` without ``always @*`` blocks.

    ``amaranth.back.verilog.convert`` keeps combinational logic in ``always @*`` processes,
    which Icarus may leave at ``X`` until one of their inputs changes after time 0 (the
    time-0 race, amaranth-lang/amaranth#594): outputs that depend only on registers that
    keep their initial value read ``X`` for many cycles. Lowering the processes to cells
    (yosys ``proc``) gives continuous assignments, which every simulator evaluates at time 0.
    """
    text = rtlil.convert(top, name=TOP_NAME, emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", "proc -norom", "memory_collect",
              "opt_clean", "write_verilog"]
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


def generate(net: Network, out_dir, *, lanes=1, coding="ttfs", skip_zeros=True,
             use_dsp=True, firing="auto", membranes="dual", encoder_banks=2) -> dict:
    """Write ``onespike_top.v`` and ``manifest.json`` into ``out_dir``; return the manifest.

    ``coding``: ``"ttfs"`` (the spiking accelerator) or ``"dense"`` (the multiply-accumulate
    baseline with the same ports; ``skip_zeros`` applies to it only). ``use_dsp``: the lane
    multiplies as plain ``*`` (else shifted adds). ``firing`` (ttfs only, one of
    :data:`~onespike.hdl.firing.FIRINGS`): how a hidden layer finds its spikes; the
    manifest records what each layer got (``layers[n].firing``: ``"sweep"``, ``"sorted"``,
    or null for the readout and max pooling). ``membranes`` (ttfs only, one of
    :data:`~onespike.hdl.plan.MEMBRANES` or one per layer): ``"single"`` keeps a hidden
    layer's membranes in one single-port RAM (:mod:`~onespike.hdl.single_port`), recorded
    as ``layers[n].membranes``; ``encoder_banks`` 1 halves the input encoder's lists (a
    sample loads once the one before is sent). The manifest also records ``coding`` and the
    ``tap_<n>`` payload fields (``tap_payload``). The same arguments give the same bytes.
    Files appear only when both are complete (written to a temporary folder first).
    """
    top = accelerator(net, lanes=lanes, coding=coding, skip_zeros=skip_zeros,
                      use_dsp=use_dsp, firing=firing, membranes=membranes,
                      encoder_banks=encoder_banks)
    text = to_verilog(top)
    info = manifest(top, f"{TOP_NAME}.v", text)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".generate-"))
    try:
        (staging / f"{TOP_NAME}.v").write_text(text)
        (staging / "manifest.json").write_text(json.dumps(info, indent=1) + "\n")
        for name in (f"{TOP_NAME}.v", "manifest.json"):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


PLAN_FORMAT = "onespike-plan/1"
#: the accelerator's own arguments in a plan; the rest of a plan describes what they build
PLAN_OPTIONS = ("coding", "lanes", "firing", "use_dsp", "skip_zeros", "membranes",
                "encoder_banks")
#: options a plan may leave out (made before they existed), with what they then mean
PLAN_DEFAULTS = {"membranes": "dual", "encoder_banks": 2}


def plan(net: Network, *, lanes=1, coding="ttfs", skip_zeros=True, use_dsp=True,
         firing="auto", membranes="dual", encoder_banks=2) -> dict:
    """What :func:`generate` builds with these arguments, as plain data and without
    generating it: ``options`` (the arguments resolved: lanes and firing per layer, the
    readout's and max pooling's firing None) and the manifest's description of the result
    (per layer its geometry, memories, multipliers and firing; memory totals; cycles if
    every neuron spikes), without the Verilog and ports. :func:`plan_options` turns a plan,
    hand-edited or not, back into :func:`generate`'s arguments."""
    top = accelerator(net, lanes=lanes, coding=coding, skip_zeros=skip_zeros, use_dsp=use_dsp,
                      firing=firing, membranes=membranes, encoder_banks=encoder_banks,
                      sizes=True)
    info = manifest(top, "", "")
    for key in ("top", "verilog", "verilog_sha256", "ports", "tap_payload"):
        info.pop(key, None)
    options = {"coding": coding, "lanes": list(top.lanes),
               "firing": list(top.firing) if coding == "ttfs" else "auto",
               "use_dsp": top.use_dsp, "skip_zeros": skip_zeros,
               "membranes": list(top.membranes) if coding == "ttfs" else "dual",
               "encoder_banks": top.encoder.banks if coding == "ttfs" else 2}
    return {"format": PLAN_FORMAT, "options": options, **info}


def plan_options(net: Network, plan: dict) -> dict:
    """:func:`generate`'s arguments from a :func:`plan` (as read back from JSON), refused
    with the reason when it is not a plan or was made for a network of other layers."""
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise OnespikeError(f"not an accelerator plan (no \"format\": \"{PLAN_FORMAT}\"); "
                            f"write one with `onespike plan NET --json > plan.json`")
    options = plan.get("options")
    if not isinstance(options, dict) or \
            not set(PLAN_OPTIONS) - set(PLAN_DEFAULTS) <= set(options) <= set(PLAN_OPTIONS):
        raise OnespikeError(f"the plan's \"options\" must hold exactly "
                            f"{', '.join(PLAN_OPTIONS)}")
    layers = [(l.get("kind"), l.get("in_shape"), l.get("out_shape"))
              for l in plan.get("layers", ()) if isinstance(l, dict)]
    ours = [(l.kind, list(l.in_shape), list(l.out_shape)) for l in net.layers]
    if layers != ours:
        raise OnespikeError(f"the plan was made for a network of other layers "
                            f"({len(layers)} layers, not these {len(ours)} of "
                            f"{', '.join(k for k, _, _ in ours)}); make it again with "
                            f"`onespike plan NET --json`")
    return {**PLAN_DEFAULTS, **options}


if __name__ == "__main__":          # `make docs`: the generated part of docs/accelerator.md
    import re
    import sys

    path = Path(sys.argv[1])
    text = path.read_text()
    begin, end = "<!-- generated by onespike.hdl.generate.interface_markdown(): edit the " \
                 "text there -->\n", "<!-- end of the generated part -->"
    path.write_text(re.sub(re.escape(begin) + ".*?" + re.escape(end),
                           lambda _: begin + interface_markdown() + end, text, flags=re.S))
