"""Input encoder: integer activations in, TTFS spike stream out."""

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import data, memory, stream
from amaranth.lib.wiring import In, Out

from onespike.hdl.streams import (SizedComponent, activation_layout, index_shape,
                                  neuron_layout, pass_bank, spike_layout)

__all__ = ["SpikeEncoder", "EncoderSizes", "SPIKE_CYCLES", "positive"]

SPIKE_CYCLES = (1, 2)


def positive(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


def flag(value, what):
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, not {value!r}")
    return value


class EncoderSizes:
    """:class:`SpikeEncoder`'s sizes as plain data."""

    def __init__(self, *, shape, levels: int, spike_cycles: int = 1, banks: int = 2):
        self._shape = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
        self._neurons = positive(int(np.prod(self._shape)), "Neuron count")
        self._levels = positive(levels, "Level count")
        if spike_cycles not in SPIKE_CYCLES:
            raise ValueError(f"spike_cycles must be one of {SPIKE_CYCLES}, not {spike_cycles!r}")
        self._spike_cycles = spike_cycles
        if banks not in (1, 2) or isinstance(banks, bool):
            raise ValueError(f"encoder banks must be 1 or 2, not {banks!r}")
        self._banks = banks

    @property
    def shape(self):
        return self._shape

    @property
    def neurons(self):
        return self._neurons

    @property
    def levels(self):
        return self._levels

    @property
    def spike_cycles(self):
        return self._spike_cycles

    @property
    def banks(self):
        return self._banks

    @property
    def memory_bits(self):
        """Bits of the banks' heads, links and (for images) neuron coordinates."""
        coords = self.neurons * neuron_layout(self.shape).size if len(self.shape) == 3 else 0
        return self._banks * ((self.levels + 1 + self.neurons) * self._entry_layout().size
                              + coords)

    def _entry_layout(self):
        """A list entry: a neuron and a valid bit (clear: the list ends), so that following
        a list is a memory read whose data is the next address, with no arithmetic."""
        return data.StructLayout({"ptr": range(self.neurons), "valid": 1})


class SpikeEncoder(SizedComponent, EncoderSizes):
    """Sorts one sample's activations into per-level lists, then emits its spike window.

    ``i`` takes ``neurons`` activations (``value`` in ``0..levels``) in neuron order, one
    per cycle; neuron ``j`` with activation ``a > 0`` is pushed onto the list of level ``a``
    (a head per level, a link per neuron, both in memories). Then for each step
    ``k = 0..A-1`` the list of level ``A - k`` is sent on ``o``, one spike per cycle, and
    the step's end marker (``index`` 0). Two banks: the next sample loads while the current
    one is sent (``banks=1``: half the memory, and a sample loads once the one before has
    been sent). Cost per sample: ``neurons + 1`` cycles to load, ``2·A + spike_cycles·spikes``
    cycles to send. After a reset the lists are emptied (``A + 1`` cycles) before ``i`` is
    ready.

    ``spike_cycles`` (:data:`SPIKE_CYCLES`): 1 sends a spike every cycle, the link memory's
    output driving its own read address (a list is followed in the read's cycle: memory
    output, bank multiplexer and address in one clock period); 2 registers the next address,
    so that the clock period holds only one of them, and spends a second cycle per spike
    (a consumer that takes two or more cycles per spike loses nothing).
    """

    def members(self):
        return {"i": In(stream.Signature(activation_layout(self._levels))),
                "o": Out(stream.Signature(spike_layout(self._shape, self._levels)))}

    def elaborate(self, platform):
        m = Module()
        entry = self._entry_layout()
        level = range(self.levels + 1)
        full = Signal(2)                             # bank holds a sample to send
        load_bank, send_bank = Signal(), Signal()

        # what each side drives on a bank's head memory
        load_head = {"addr": Signal(level), "waddr": Signal(level), "wdata": Signal(entry),
                     "en": Signal(), "data": Signal(entry)}
        send_head = {"addr": Signal(level), "en": Signal(), "data": Signal(entry)}
        link_write = {"addr": Signal(range(self.neurons)), "data": Signal(entry),
                      "en": Signal()}
        link_read = {"addr": Signal(range(self.neurons)), "data": Signal(entry)}
        image = len(self.shape) == 3          # images also keep each neuron's {x, y, c}
        where = neuron_layout(self.shape)
        coord_write, coord_read = Signal(where), Signal(where)
        clearing = Signal()

        def on(bank, b):        # bank signal ``bank`` names memory bank ``b``
            return bank == b if self._banks == 2 else 1

        for b in range(self._banks):
            m.submodules[f"heads{b}"] = heads = memory.Memory(shape=entry,
                                                              depth=self.levels + 1, init=[])
            m.submodules[f"links{b}"] = links = memory.Memory(shape=entry,
                                                              depth=self.neurons, init=[])
            head_write = heads.write_port()
            head_read = heads.read_port(transparent_for=[head_write])
            link_w, link_r = links.write_port(), links.read_port()
            if image:
                m.submodules[f"coords{b}"] = coords = memory.Memory(
                    shape=where, depth=self.neurons, init=[])
                coords_w, coords_r = coords.write_port(), coords.read_port()
                m.d.comb += [coords_w.addr.eq(link_write["addr"]),
                             coords_w.data.eq(coord_write),
                             coords_w.en.eq(link_write["en"] & on(load_bank, b)),
                             coords_r.addr.eq(link_read["addr"])]
                with m.If(on(send_bank, b)):
                    m.d.comb += coord_read.eq(coords_r.data)
            with m.If(full[b] if self._banks == 2 else full.any()):   # sending: read a
                m.d.comb += [head_read.addr.eq(send_head["addr"]),    # head, empty it
                             head_write.addr.eq(send_head["addr"]),
                             head_write.en.eq(send_head["en"] & on(send_bank, b))]
            with m.Else():        # loading (or clearing after reset)
                m.d.comb += [head_read.addr.eq(load_head["addr"]),
                             head_write.addr.eq(load_head["waddr"]),
                             head_write.data.eq(load_head["wdata"]),
                             head_write.en.eq(load_head["en"]
                                              & (on(load_bank, b) | clearing))]
            m.d.comb += [link_w.addr.eq(link_write["addr"]), link_w.data.eq(link_write["data"]),
                         link_w.en.eq(link_write["en"] & on(load_bank, b)),
                         link_r.addr.eq(link_read["addr"])]
            with m.If(on(load_bank, b)):
                m.d.comb += load_head["data"].eq(head_read.data)
            with m.If(on(send_bank, b)):
                m.d.comb += [send_head["data"].eq(head_read.data),
                             link_read["data"].eq(link_r.data)]

        self._load(m, load_head, link_write, full, load_bank, clearing, coord_write)
        self._send(m, send_head, link_read, full, send_bank, coord_read)
        return m

    def _load(self, m, head, link, full, bank, clearing, pushed_coord):
        j = Signal(range(max(self.neurons, self.levels + 1)))   # neuron, or level to clear
        pushing = Signal()                           # stage 2 holds neuron ``pushed``
        pushed = Signal(index_shape(self.neurons))
        pushed_level = Signal(range(self.levels + 1))
        m.d.comb += [head["addr"].eq(self.i.payload.value), head["waddr"].eq(pushed_level),
                     head["wdata"].ptr.eq(pushed), head["wdata"].valid.eq(1),
                     link["addr"].eq(pushed),
                     link["data"].eq(head["data"])]
        with m.If(pushing & (pushed_level != 0)):    # link ← old head, head ← neuron
            m.d.comb += [head["en"].eq(1), link["en"].eq(1)]
        m.d.sync += pushing.eq(0)
        coord = Signal.like(pushed_coord)            # {x, y, c} of neuron j (images)
        if len(self.shape) == 3:
            _, h, w = self.shape
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [pushed_coord.eq(coord), coord.x.eq(coord.x + 1)]
                with m.If(coord.x == w - 1):
                    m.d.sync += [coord.x.eq(0), coord.y.eq(coord.y + 1)]
                    with m.If(coord.y == h - 1):
                        m.d.sync += [coord.y.eq(0), coord.c.eq(coord.c + 1)]
                        with m.If(j == self.neurons - 1):
                            m.d.sync += coord.c.eq(0)
        with m.FSM(name="load"):
            with m.State("CLEAR"):                   # empty every list of both banks
                m.d.comb += [clearing.eq(1), head["en"].eq(1), head["waddr"].eq(j),
                             head["wdata"].eq(0)]
                m.d.sync += j.eq(j + 1)
                with m.If(j == self.levels):
                    m.d.sync += j.eq(0)
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(~full.bit_select(bank, 1) if self._banks == 2
                                            else full == 0)
                with m.If(self.i.valid & self.i.ready):
                    m.d.sync += [pushing.eq(1), pushed.eq(j),
                                 pushed_level.eq(self.i.payload.value), j.eq(j + 1)]
                    with m.If(j == self.neurons - 1):
                        m.d.sync += j.eq(0)
                        m.next = "HANDOVER"
            with m.State("HANDOVER"):                # the last push completes
                pass_bank(m, full, bank, 1)
                m.next = "LOAD"

    def _fetches(self):
        """A cycle before each spike in which the registered address reads its link."""
        return self.spike_cycles == 2

    def _send(self, m, head, link, full, bank, coord):
        step = Signal(index_shape(self.levels))
        neuron = Signal(range(self.neurons))         # the neuron being sent
        follow = self.spike_cycles == 1              # the link output drives the address
        m.d.comb += [self.o.payload.index.eq(coord if len(self.shape) == 3 else neuron),
                     self.o.payload.step.eq(step),
                     head["addr"].eq(self.levels - step), link["addr"].eq(neuron)]
        first = "FETCH" if self._fetches() else "SPIKE"     # after a list head or a spike
        with m.FSM(name="send"):
            with m.State("WAIT"):
                with m.If(full.bit_select(bank, 1)):
                    m.next = "HEAD"
            with m.State("HEAD"):                    # the list of level A - step
                m.d.comb += head["en"].eq(1)
                if follow:
                    m.d.comb += link["addr"].eq(head["data"].ptr)
                m.d.sync += neuron.eq(head["data"].ptr)
                m.next = "END"
                with m.If(head["data"].valid):
                    m.next = first
            if self._fetches():
                with m.State("FETCH"):               # the link (and {x, y, c}) of neuron
                    m.next = "SPIKE"
            with m.State("SPIKE"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    if follow:
                        m.d.comb += link["addr"].eq(link["data"].ptr)
                    m.d.sync += neuron.eq(link["data"].ptr)
                    m.next = first
                    with m.If(~link["data"].valid):
                        m.next = "END"
            with m.State("END"):                     # index unused: a defined 0
                m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1),
                             self.o.payload.index.eq(0),
                             head["addr"].eq(self.levels - step - 1)]
                with m.If(self.o.ready):
                    m.d.sync += step.eq(step + 1)
                    m.next = "HEAD"
                    with m.If(step == self.levels - 1):
                        m.d.sync += step.eq(0)
                        pass_bank(m, full, bank, 0)
                        m.next = "WAIT"
        return m
