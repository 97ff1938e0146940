"""Planted faults for the formal properties (:mod:`onespike.sim.formal`): wrappers that
break a core at its ports, and narrower register widths. A property is trusted only once
it has failed on one of these.

* ``unstable``: the output payload changes while the consumer stalls.
* ``drop_spike`` / ``drop_end``: the first spike (end-of-step marker) after a reset is lost.
* ``dup``: the first spike (logit, class) after a reset is sent twice.
* ``bump``: every spike claims the next step (a logit or class the next index).
* ``spurious``: a whole window of markers (the logits, a class) is sent before anything
  came in.
* ``slow_reset``: ``i.ready`` stays low one cycle past the core's reset bound.
* ``narrow_membrane``: the core built with its membrane register one bit too
  small (a :class:`~onespike.ir.LayerWidths` one bit short of the IR's).
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from onespike.ir import LayerWidths

__all__ = ["FAULTS", "planted"]


class Broken(wiring.Component):
    """``core`` behind the same ports, with ``fault`` applied to them."""

    def __init__(self, core, target, fault):
        self._core, self._target, self._fault = core, target, fault
        super().__init__(core.signature)

    def _item(self, payload):
        """The transfers a fault picks: spikes (not markers), every logit or class."""
        return ~payload.end if self._target.o_kind == "spikes" else 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        if self._fault == "slow_reset":
            self._slow_reset(m, core)
            self._through(m, core)
        else:
            wiring.connect(m, wiring.flipped(self.i), core.i)
            getattr(self, "_" + self._fault)(m, core)
        return m

    def _through(self, m, core):
        m.d.comb += [self.o.valid.eq(core.o.valid), self.o.payload.eq(core.o.payload),
                     core.o.ready.eq(self.o.ready)]

    def _slow_reset(self, m, core):
        bound = self._target.reset_bound
        since = Signal(range(bound + 2))
        with m.If(since <= bound):
            m.d.sync += since.eq(since + 1)
        waiting = since <= bound
        m.d.comb += [core.i.valid.eq(self.i.valid & ~waiting),
                     core.i.payload.eq(self.i.payload),
                     self.i.ready.eq(core.i.ready & ~waiting)]

    def _unstable(self, m, core):
        self._through(m, core)
        toggle = Signal()
        m.d.sync += toggle.eq(~toggle)
        flipped = core.o.payload.as_value() ^ toggle
        m.d.comb += self.o.payload.eq(flipped)

    def _drop(self, m, core, pick):
        self._through(m, core)
        done = Signal()
        with m.If(core.o.valid & pick & ~done):
            m.d.comb += [self.o.valid.eq(0), core.o.ready.eq(1)]
            m.d.sync += done.eq(1)

    def _drop_spike(self, m, core):
        self._drop(m, core, self._item(core.o.payload))

    def _drop_end(self, m, core):
        self._drop(m, core, core.o.payload.end)

    def _dup(self, m, core):
        saved = Signal.like(core.o.payload)
        again, done = Signal(), Signal()
        with m.If(again):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(saved), core.o.ready.eq(0)]
            with m.If(self.o.ready):
                m.d.sync += again.eq(0)
        with m.Else():
            self._through(m, core)
            with m.If(core.o.valid & self.o.ready & self._item(core.o.payload) & ~done):
                m.d.sync += [again.eq(1), done.eq(1), saved.eq(core.o.payload)]

    def _bump(self, m, core):
        self._through(m, core)
        p = core.o.payload
        field = "step" if self._target.o_kind == "spikes" else "index"
        with m.If(self._item(p)):
            m.d.comb += getattr(self.o.payload, field).eq(getattr(p, field) + 1)

    def _spurious(self, m, core):
        t = self._target
        count = 1 if t.o_kind == "class" else t.o_levels
        sent = Signal(range(count + 1))
        with m.If(sent < count):
            m.d.comb += [self.o.valid.eq(1), core.o.ready.eq(0)]
            if t.o_kind == "spikes":
                m.d.comb += [self.o.payload.end.eq(1), self.o.payload.step.eq(sent)]
            elif t.o_kind == "logits":
                m.d.comb += [self.o.payload.index.eq(sent),
                             self.o.payload.last.eq(sent == count - 1)]
            with m.If(self.o.ready):
                m.d.sync += sent.eq(sent + 1)
        with m.Else():
            self._through(m, core)


def _narrow(widths: LayerWidths, field: str) -> LayerWidths:
    """``widths`` with register ``field`` (``current``/``membrane``) one bit smaller."""
    bits = getattr(widths, f"{field}_bits")
    return dataclasses.replace(widths, **{f"{field}_bound": (1 << (bits - 2)) - 1})


# (no narrow_current: the core keeps no current register; a spike adds w·(A_in − s) at once)
FAULTS = ("unstable", "drop_spike", "drop_end", "dup", "bump", "spurious", "slow_reset",
          "narrow_membrane")


def planted(target, fault):
    """``(target, wrap)`` for a :class:`~onespike.sim.formal.Harness` with ``fault``."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
    if fault.startswith("narrow_"):
        if target.widths is None:
            raise ValueError(f"{target.name} has no register widths")
        narrow = _narrow(target.widths, fault.split("_")[1])
        make = target.make
        return dataclasses.replace(target, make=lambda: make(narrow)), None
    return target, lambda core, t: Broken(core, t, fault)
