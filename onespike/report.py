"""``onespike report``: a Markdown report with PNG figures of what the tool made of a network.

Sections: the network (layers, windows, register widths) and its accuracy; a spike raster of
one sample through every layer and the spikes per neuron of each layer; operations per
inference (TTFS synaptic additions, dense multiply-accumulates with and without zero
skipping, rate-coded spikes where :mod:`onespike.sim.rate` is present); cycles per stage
(measured in the Amaranth simulator, the cycle model, the event lower bound); the board
builds given; and an energy *estimate* with every per-operation figure and its source.
Everything is computed here from the network and the inputs; nothing is copied from a run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from onespike.errors import OnespikeError
from onespike.ir import MaxPool, Network, Recurrent

__all__ = ["describe", "operations", "ENERGY_PJ", "write_report"]

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm,
# 0.9 V: per operation, in picojoules
ENERGY_PJ = {
    "add8": (0.03, "8-bit integer add"),
    "add32": (0.1, "32-bit integer add (used for every accumulator wider than 8 bits)"),
    "mult8": (0.2, "8-bit integer multiply"),
    "sram64": (10.0, "64-bit read from an 8 KB SRAM (one weight word per operation, "
                     "shared by 8 weights of 8 bits: 1.25 pJ each)"),
}
ENERGY_SOURCE = "M. Horowitz, ISSCC 2014, 45 nm (Table: energy per operation)"


def describe(net: Network) -> list:
    """One line per layer: shapes, windows, register widths, ramps (``onespike info``)."""
    starts = net.window_starts()
    lines = [f"input    {net.encoder.shape}  act_bits {net.encoder.act_bits}  "
             f"fires in steps [0, {net.encoder.levels}]"]
    if net.steps is not None:
        lines.append(f"sequence of {net.steps} steps: layers 0..{net.per_step_layers - 1} "
                     f"run once per step (windows below are one step's), the rest on the "
                     f"last step")
    for i, (layer, widths) in enumerate(zip(net.layers, net.widths())):
        head = f"{i:<3}{layer.kind:<9}{str(layer.in_shape):>14} -> {str(layer.out_shape):<14}"
        if isinstance(layer, MaxPool):
            lines.append(f"{head} kernel {layer.kernel} stride {layer.stride}")
            continue
        fires = starts[i] + net.in_levels(i)
        role = "readout" if layer.is_readout else f"fires in [{fires}, {fires + layer.levels}]"
        ramp = "" if layer.is_readout else f" R {layer.ramp.min()}..{layer.ramp.max()}"
        pool = f" sum-pool {layer.pool}" if layer.pooling else ""
        lines.append(f"{head} I {widths.current_bits}b V {widths.membrane_bits}b{ramp}{pool}"
                     f"  {role}")
    lines.append(f"latency {net.latency_steps} time steps, {net.num_classes} classes")
    return lines


def _windows(net, n) -> int:
    """Windows layer ``n`` integrates per sample (a sequence's steps for a per-step layer)."""
    return net.steps if net.per_step(n) else 1


def operations(net: Network, trace) -> dict:
    """Mean operations per inference of the golden ``trace`` (a ``closed_form`` result).

    ``ttfs_additions``: ``I += w``, one per spike and synapse; ``dense_macs_skip``: the
    multiply-accumulates of a dense accelerator that skips zero activations (the same count:
    a spike is a non-zero activation); ``dense_macs``: without skipping."""
    from onespike.sim.golden import synaptic_fanout

    samples = max(len(trace.logits), 1)
    macs = 0
    for n, layer in enumerate(net.layers):
        if not isinstance(layer, MaxPool):
            macs += int(synaptic_fanout(layer).sum()) * _windows(net, n)
        if isinstance(layer, Recurrent):          # h_0 … h_{T−2} through W_h
            macs += layer.recurrent.size * (net.steps - 1)
    additions = float(np.sum(trace.synaptic_ops)) / samples
    spikes = float(np.sum(trace.spikes)) / samples
    return {"ttfs_additions": additions, "dense_macs_skip": additions, "dense_macs": macs,
            "spikes": spikes, "input_spikes": float(np.sum(trace.input_spikes)) / samples}


def _energy(ops: dict) -> dict:
    """Energy estimate per inference (pJ), arithmetic and weight reads, per coding."""
    pj = {k: v for k, (v, _) in ENERGY_PJ.items()}
    weight = pj["sram64"] / 8
    return {"ttfs": ops["ttfs_additions"] * (pj["add32"] + weight),
            "dense_skip": ops["dense_macs_skip"] * (pj["mult8"] + pj["add32"] + weight),
            "dense": ops["dense_macs"] * (pj["mult8"] + pj["add32"] + weight)}


def _raster(net, trace, sample, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = list(trace.times)
    names = ["input"] + [f"layer {i} ({l.kind})" for i, l in enumerate(net.layers[:-1])]
    starts = net.window_starts()
    fig, axes = plt.subplots(len(maps), 1, sharex=True, figsize=(8, 1.6 * len(maps) + 0.8),
                             squeeze=False)
    for ax, times, name, n in zip(axes[:, 0], maps, names, range(len(maps))):
        t = np.asarray(times[sample]).reshape(-1)
        fired = np.flatnonzero(t >= 0)
        ax.axvspan(starts[n], starts[n] + net.in_levels(n), color="0.93")
        ax.scatter(t[fired], fired, s=4, marker="|", color="C0")
        ax.set_ylabel(f"{name}\nneuron", fontsize=8)
        ax.set_ylim(-1, max(t.size, 1))
        ax.set_title(f"{name}: {fired.size} of {t.size} neurons fire", fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("time step (shaded: the window in which this map fires)")
    fig.suptitle(f"Spike raster, sample {sample}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bars(path, labels, values, ylabel, title, log=False):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.bar(range(len(values)), values, color=[f"C{i}" for i in range(len(values))])
    ax.set_xticks(range(len(values)), labels, fontsize=8, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:,.0f}" if v >= 10 else f"{v:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _spike_counts(net, trace) -> list:
    """``(layer name, neurons, mean spikes per neuron)`` for each spiking map."""
    rows = []
    for n, times in enumerate(trace.times[1:], start=0):
        t = np.asarray(times).reshape(len(times), -1)
        name = f"{n} {net.layers[n].kind}"
        rows.append((name, t.shape[1], float((t >= 0).sum(axis=1).mean() / t.shape[1])))
    return rows


def _builds(build_dirs) -> list:
    rows = []
    for folder in build_dirs:
        report = Path(folder) / "build.json"
        if not report.is_file():
            raise OnespikeError(f"build folder {folder} holds no build.json; give folders "
                                f"written by `onespike build`")
        rows.append(json.loads(report.read_text()))
    return rows


def _cycles(net, lanes, a0, measure) -> dict:
    """Cycle model, event lower bound and (``measure`` samples) the Amaranth simulator."""
    from onespike.hdl.cycles import cycle_estimate
    from onespike.hdl.plan import AcceleratorPlan
    from onespike.hdl.top import Accelerator
    from onespike.sim.golden import closed_form

    trace = closed_form(net, a0)
    spikes = [float((np.asarray(t) >= 0).sum()) / len(a0) for t in trace.times]
    top = AcceleratorPlan(net, lanes=lanes)
    model = cycle_estimate(top, spikes)
    def looped(n):                                # h_{t−1}'s spikes: inputs again
        return spikes[n + 1] if isinstance(net.layers[n], Recurrent) else 0
    bounds = [math.ceil(layer.weight.shape[0] / core.lanes)
              * (spikes[n] + looped(n) + net.in_levels(n) * _windows(net, n))
              for n, (core, layer) in enumerate(zip(top.cores, net.layers))
              if not isinstance(layer, MaxPool)]
    out = {"model_steady": model["steady"], "model_latency": model["latency"],
           "stages": model["stages"], "event_bound_steady": max(bounds),
           "event_bound_alone": sum(bounds), "measured_steady": None}
    if measure:
        from onespike.sim.check import first_mismatch
        from onespike.sim.hardware import run

        count = min(measure, len(a0))
        hw = run(Accelerator(net, lanes=lanes), a0[:count])
        if first_mismatch(net, closed_form(net, a0[:count]), hw.trace) is not None:
            raise OnespikeError("the accelerator differs from the golden model; run "
                                "`onespike verify` for the first mismatch")
        done = np.asarray(hw.sample_done)
        out["measured_steady"] = float(np.diff(done).mean()) if count > 1 else hw.cycles
        out["measured_samples"] = count
    return out


def _table(header, rows) -> list:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _accuracy_section(net, x, labels, float_accuracy):
    from onespike.sim.evaluate import evaluate

    lines = ["## Accuracy", ""]
    if x is None or labels is None:
        return lines + ["No labelled inputs given (`--inputs X.npy --labels Y.npy`).", ""]
    quant, _ = evaluate(net, x, labels, mode="closed", progress=False)
    spiking, _ = evaluate(net, x, labels, mode="event", progress=False)
    rows = [("float (the trained model)", "—" if float_accuracy is None
             else f"{float_accuracy:.4f}"),
            ("quantized (integer network, closed form)", f"{quant['accuracy']:.4f}"),
            ("spiking (event simulation of every neuron)", f"{spiking['accuracy']:.4f}")]
    return lines + [f"On {len(x)} labelled inputs:", ""] + _table(("model", "accuracy"), rows) \
        + ["", "The spiking and the quantized network agree bit for bit by construction "
               "(tested on every layer); float differs by quantization only.", ""], \
        {"quantized_accuracy": quant["accuracy"], "spiking_accuracy": spiking["accuracy"]}


def _operations_section(net, trace, figures):
    ops = operations(net, trace)
    labels = ["TTFS additions", "dense MACs (skip zeros)", "dense MACs"]
    values = [ops["ttfs_additions"], ops["dense_macs_skip"], ops["dense_macs"]]
    rows = [("TTFS synaptic additions (`I += w`)", f"{ops['ttfs_additions']:,.0f}"),
            ("dense multiply-accumulates, zero activations skipped",
             f"{ops['dense_macs_skip']:,.0f}"),
            ("dense multiply-accumulates, no skipping", f"{ops['dense_macs']:,.0f}"),
            ("spikes (hidden layers)", f"{ops['spikes']:,.1f}"),
            ("input spikes", f"{ops['input_spikes']:,.1f}")]
    rate_rows = _rate_rows(net, trace)
    for label, spikes, adds in rate_rows:
        labels.append(label)
        values.append(adds)
        rows.append((f"{label}: spikes / synaptic additions", f"{spikes:,.0f} / {adds:,.0f}"))
    _bars(figures / "operations.png", labels, values, "per inference",
          "Operations per inference (additions or multiply-accumulates)")
    lines = ["## Operations per inference", "",
             "![operations per inference](figures/operations.png)", ""] + \
        _table(("operation", "mean per inference"), rows) + [
        "", "A TTFS spike is a non-zero activation, so the spiking network does as many "
            "additions as a zero-skipping dense accelerator does multiply-accumulates; what "
            "differs is an addition against a multiply and a window of time steps against "
            "one pass.", ""]
    return lines, ops


def _rate_rows(net, trace):
    """The same integers rate-coded (:mod:`onespike.sim.rate`) at ``T = A`` of the first
    hidden layer: ``(label, spikes, synaptic additions incl. the analog input layer's)``."""
    from onespike.sim import rate

    a0 = np.asarray(trace.activations[0])
    steps = next((l.levels for l in net.layers[:-1] if not isinstance(l, MaxPool)),
                 net.encoder.levels)
    rows, samples = [], max(len(a0), 1)
    for bipolar in (False, True):
        result = rate.rate_sim(net, a0, steps=steps, bipolar=bipolar)
        exact = rate.guaranteed_exact(net, steps=steps, bipolar=bipolar)
        name = f"rate{' bipolar' if bipolar else ''} T={steps}{' (exact)' if exact else ''}"
        rows.append((name, float(np.sum(result.spikes)) / samples,
                     float(np.sum(result.synaptic_ops) + np.sum(result.input_macs)) / samples))
    return rows


def _cycles_section(net, lanes, a0, measure):
    c = _cycles(net, lanes, a0, measure)
    rows = [(stage, f"{cycles:,.0f}") for stage, cycles in c["stages"].items()]
    measured = "—" if c["measured_steady"] is None else f"{c['measured_steady']:,.0f}"
    lines = ["## Cycles per inference", "",
             f"At {max(lanes) if not isinstance(lanes, int) else lanes} lanes, with the mean "
             f"spike counts of the inputs:", "",
             *_table(("", "cycles per sample, back to back"),
                     [("measured (Amaranth simulator, "
                       f"{c.get('measured_samples', 0)} samples)", measured),
                      ("cycle model (`onespike.hdl.cycles`)", f"{c['model_steady']:,.0f}"),
                      ("event lower bound: the slowest layer's groups·(input spikes + "
                       "steps)", f"{c['event_bound_steady']:,.0f}")]),
             "", f"One sample alone: the cycle model says {c['model_latency']:,.0f} cycles; "
                 f"the event lower bound summed over layers is "
                 f"{c['event_bound_alone']:,.0f}.",
             "", "Per stage (cycle model; the slowest stage sets the pace):", "",
             *_table(("stage", "cycles"), rows), ""]
    return lines, c


def _builds_section(builds, steady):
    if not builds:
        return ["## Builds", "", "No build given (`--build DIR`, from `onespike build`).", ""]
    rows = []
    for b in builds:
        fmax = b.get("fmax_mhz") or 0
        us = steady / fmax if fmax and steady else None
        rows.append((b.get("board"), b.get("coding", "ttfs"), b.get("lanes"), b.get("luts"),
                     b.get("ffs"), b.get("bram"), b.get("spram", 0), b.get("dsp", 0),
                     f"{fmax:.1f}", "—" if us is None else f"{us:.1f}"))
    return ["## Builds", "", *_table(("board", "coding", "lanes", "LUT4/LC", "FF",
                                      "block RAM", "SPRAM", "DSP", "Fmax MHz",
                                      "µs/image at Fmax"), rows), ""]


def _energy_section(ops):
    e = _energy(ops)
    figures = [(f"{v} pJ", text) for v, text in ENERGY_PJ.values()]
    return ["## Energy per inference (an estimate)", "",
            "**An estimate, not a measurement**: operation counts of this network times "
            f"published per-operation energies ({ENERGY_SOURCE}), arithmetic and weight "
            "reads only; no clock tree, control, I/O or FPGA overhead.", "",
            *_table(("figure", "operation"), figures), "",
            *_table(("coding", "estimated energy per inference"),
                    [("TTFS (add + weight read per synaptic event)", f"{e['ttfs'] / 1e3:.2f} nJ"),
                     ("dense, zero skipping (mult + add + weight read)",
                      f"{e['dense_skip'] / 1e3:.2f} nJ"),
                     ("dense, no skipping", f"{e['dense'] / 1e3:.2f} nJ")]), ""], e


#: The lanes the report's cycle figures assume unless told.
REPORT_LANES = 8


def write_report(net: Network, out_dir, *, x=None, labels=None, float_accuracy=None,
                 lanes=None, build_dirs=(), measure=4, sample=0,
                 title="onespike report") -> dict:
    """Write ``out_dir/report.md`` and ``out_dir/figures/*.png``; returns the numbers.

    ``x`` are float inputs as fed to the model (without them, 16 seeded random samples);
    ``lanes`` for the cycle figures (None: :data:`REPORT_LANES`, at most the largest layer);
    ``measure`` samples run in the Amaranth simulator for the measured cycles (0: none)."""
    from onespike.sim.golden import closed_form

    builds = _builds(build_dirs)
    if x is not None:
        a0 = net.encoder.encode(np.asarray(x))
    else:
        a0 = np.random.default_rng(0).integers(0, net.encoder.levels + 1,
                                               size=(16,) + tuple(net.encoder.sample_shape))
    if len(a0) == 0:
        raise OnespikeError("no inputs to report on")
    if lanes is None:
        lanes = min(REPORT_LANES, max(layer.weight.shape[0] for layer in net.layers
                                      if not isinstance(layer, MaxPool)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".report-"))
    try:
        figures = staging / "figures"
        figures.mkdir()
        trace = closed_form(net, a0)
        result = _compose(net, trace, a0, staging, figures, x, labels, float_accuracy,
                          lanes, builds, measure, min(sample, len(a0) - 1), title)
        shutil.rmtree(out_dir / "figures", ignore_errors=True)
        os.replace(figures, out_dir / "figures")
        os.replace(staging / "report.md", out_dir / "report.md")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result["report"] = str(out_dir / "report.md")
    result["figures"] = sorted(str(p) for p in (out_dir / "figures").glob("*.png"))
    return result


def _compose(net, trace, a0, staging, figures, x, labels, float_accuracy, lanes, builds,
             measure, sample, title):
    _raster(net, trace, sample, figures / "raster.png")
    counts = _spike_counts(net, trace)
    _bars(figures / "spikes_per_neuron.png", [c[0] for c in counts], [c[2] for c in counts],
          "spikes per neuron", "Mean spikes per neuron, per layer")
    accuracy = _accuracy_section(net, x, labels, float_accuracy)
    acc_lines, acc = (accuracy, {}) if isinstance(accuracy, list) else accuracy
    op_lines, ops = _operations_section(net, trace, figures)
    cyc_lines, cycles = _cycles_section(net, lanes, a0, measure)
    steady = cycles["measured_steady"] or cycles["model_steady"]
    energy_lines, energy = _energy_section(ops)
    lines = [f"# {title}", "", "## The network", "", "```", *describe(net), "```", "",
             *acc_lines, "## Spikes", "",
             f"![spike raster of sample {sample}](figures/raster.png)", "",
             f"Sample {sample} through every layer: each mark is one neuron's single spike; a "
             "neuron of activation `a` fires `A − a` steps into its window, so the strongest "
             "fire first, and neurons of activation 0 never fire.", "",
             "![spikes per neuron](figures/spikes_per_neuron.png)", "",
             *_table(("layer", "neurons", "spikes per neuron"),
                     [(c[0], c[1], f"{c[2]:.3f}") for c in counts]), "",
             *op_lines, *cyc_lines, *_builds_section(builds, steady), *energy_lines]
    (staging / "report.md").write_text("\n".join(lines) + "\n")
    return {**acc, "operations": ops, "cycles": cycles, "energy_pj": energy,
            "builds": len(builds)}
