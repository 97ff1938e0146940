"""A neuron core's membranes in one single-port RAM: an iCE40 UltraPlus SPRAM (16 K × 16
bits, four of them hold 1 Mbit, eight times the block RAM) reads or writes one word a
cycle, where the core's membrane memory takes two reads (integration, firing) and one write
(integration's sum or the ``U0`` write-back) in every cycle.

The core then takes one step every :data:`PACE` clock cycles (its logic under an
``EnableInserter``; its streams hand over only in the step's last cycle), and the RAM, run
on every clock cycle, serves the step's accesses one per cycle: the integration read in the
step's first cycle, the firing read in its second, the write in its last (at the same clock
edge as the core's registers). Each read port's data changes only at a step's end, as a
synchronous read port of the paced core would; the integration port is transparent for the
write (it sees a word written in the same step). Nothing of the core's arithmetic changes:
a paced core is exact wherever the plain one is, ``PACE`` times slower.
"""

from types import SimpleNamespace

from amaranth.hdl import (ClockDomain, ClockSignal, Elaboratable, Module, Mux, ResetSignal,
                          Signal, Value)
from amaranth.lib import memory

__all__ = ["PACE", "SINGLE_PORT_ROLE", "SinglePortMembranes", "pace_domain"]

PACE = 3
"""Clock cycles per step of a core with single-port membranes: two reads and a write."""

SINGLE_PORT_ROLE = "single-port"
"""The ``onespike_role`` attribute of the RAM: boards may map it to SPRAM."""


def pace_domain(m):
    """Add the local clock domain ``pace`` (the ``sync`` clock and reset, never enabled)
    to ``m``, and a step counter in it: returns ``(phase, step_end)``."""
    m.domains.pace = ClockDomain(local=True)
    m.d.comb += [ClockSignal("pace").eq(ClockSignal("sync")),
                 ResetSignal("pace").eq(ResetSignal("sync"))]
    phase = Signal(range(PACE), name="pace_phase")
    step_end = Signal(name="pace_step_end")
    m.d.comb += step_end.eq(phase == PACE - 1)
    m.d.pace += phase.eq(Mux(step_end, 0, phase + 1))
    return phase, step_end


class SinglePortMembranes(Elaboratable):
    """The membrane memory of a paced core (``shape``, ``depth`` words), with the ports of
    an Amaranth ``Memory`` as the core uses them: :meth:`write_port`, then
    :meth:`read_port` for integration (``transparent_for`` the write port) and for firing.
    ``phase`` counts the clock cycles of a step (:func:`pace_domain`)."""

    def __init__(self, *, shape, depth, phase):
        self.shape, self.depth, self.phase = shape, depth, phase
        self.ram = memory.Memory(shape=shape, depth=depth, init=[],
                                 attrs={"onespike_role": SINGLE_PORT_ROLE})
        self._write, self._reads = None, []

    def write_port(self):
        self._write = SimpleNamespace(addr=Signal(range(self.depth), name="membrane_waddr"),
                                      en=Signal(name="membrane_wen"),
                                      data=Signal(self.shape, name="membrane_wdata"))
        return self._write

    def read_port(self, *, transparent_for=()):
        n = len(self._reads)
        port = SimpleNamespace(addr=Signal(range(self.depth), name=f"membrane_raddr{n}"),
                               en=Signal(init=1, name=f"membrane_ren{n}"),
                               data=Signal(self.shape, name=f"membrane_rdata{n}"),
                               transparent=bool(transparent_for))
        self._reads.append(port)
        return port

    def _write_phase(self):
        """The cycle of a step in which the RAM writes (a planted fault moves it)."""
        return PACE - 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = self.ram
        w, reads, phase = self._write, self._reads, self.phase
        assert w is not None and len(reads) == PACE - 1, "one write and two read ports"
        ram_read = self.ram.read_port(domain="pace")
        ram_write = self.ram.write_port(domain="pace")
        writing = phase == self._write_phase()
        address = Signal.like(w.addr, name="membrane_addr")       # the one port's address
        m.d.comb += address.eq(w.addr)
        for n, port in enumerate(reads):
            with m.If(phase == n):
                m.d.comb += address.eq(port.addr)
        m.d.comb += [ram_read.addr.eq(address), ram_read.en.eq(~writing),
                     ram_write.addr.eq(address), ram_write.data.eq(w.data),
                     ram_write.en.eq(writing & w.en)]
        step_end = phase == PACE - 1
        for n, port in enumerate(reads):
            # read ``n`` is issued in cycle ``n`` and its word is out in cycle ``n + 1``
            if n + 1 < PACE - 1:
                word = Signal(self.shape, name=f"membrane_word{n}")
                with m.If(phase == n + 1):
                    m.d.pace += word.eq(ram_read.data)
            else:
                word = ram_read.data
            word = Value.cast(word)
            if port.transparent:
                word = Mux(w.en & (w.addr == port.addr), Value.cast(w.data), word)
            with m.If(step_end & port.en):
                m.d.pace += Value.cast(port.data).eq(word)
        return m
