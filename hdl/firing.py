"""Sorted firing: a hidden core's phase 2 in one pass over its state words.

The sweep (:meth:`NeuronCore._firing`) tests every state word in every one of the layer's
``A`` steps: ``A·(words + 2)`` cycles however few neurons fire. Sorted firing reads each
word once, finds each lane's firing step directly and files the neuron on a per-step list,
then sends the lists in step order, like the input encoder's per-level lists:

* **Firing step.** A neuron fires at the first step ``k`` with ``U + k·R ≥ 0``
  (``U = V − A·R``): ``k = 0`` if ``U ≥ 0``, else ``k = ceil(D / R)`` with ``D = −U``,
  and only if ``k ≤ A − 1``. With ``D − 1 = ~U`` (two's complement) that is
  ``floor((D − 1) / R) + 1``, and the division is a multiply by the lane's reciprocal
  ``m = ceil(2^s / R)``, ``floor((D − 1)·m / 2^s)``: exact for every ``D − 1 < 2^w`` with
  ``2^w ≥ A·R_max`` and ``s = w + bits(R_max)`` (the error ``(D − 1)·(m·R − 2^s) / (R·2^s)``
  stays below ``1/R``). ``D − 1 ≥ 2^w`` means ``D > A·R``: no spike. One multiply per lane,
  as the sweep's ``k·R``; ``m`` replaces ``R`` in the constants word.
* **Lists.** A head per step and lane (a small memory per lane, ``A`` rows) and a link per
  neuron (a memory per lane addressed by the word's counters): a word's firing lanes are
  filed in the cycle after their step is known, all lanes at once. A link or head holds the
  word's counters and a valid bit (clear: the list ends), so that following a list is a
  memory read whose data is the next address.
* **Sending.** For ``k = 0..A−1``: read every lane's head of step ``k``, walk the lists
  lane by lane (one spike per cycle, newest word first), send the step's end marker and
  clear the step's heads: ``3·A + spikes`` cycles.

The pass also writes ``U0`` back into each word it reads, so the bank is free as soon as the
pass ends (``words + 4`` cycles, plus a cycle wherever integration writes), before sending.
Per sample: ``words + 4 + 2·A + spikes`` cycles instead of ``A·(words + 2) + spikes``.
After a reset the heads are cleared (``A`` cycles) before the banks are restored.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Mux, Signal
from amaranth.lib import data, memory

from onespike.hdl.arith import multiply
from onespike.hdl.counters import Odometer
from onespike.hdl.streams import index_shape, pass_bank

__all__ = ["FIRINGS", "FiringTiming", "Reciprocals", "sorted_firing", "sorting_pays",
           "firing_cycles"]

FIRINGS = ("auto", "sweep", "sorted")


@dataclass(frozen=True)
class FiringTiming:
    """The cycles of a hidden core's phase 2 over ``words`` state words, the one
    description that the closed-form cycle model (:func:`firing_cycles`) and the event
    replay (:mod:`~onespike.hdl.cycles`) both read: before the first step ``setup`` (sorted:
    the pass that files every neuron and writes ``U0`` back), then per step ``step`` cycles
    and one per spike sent (the sweep: one per word, a cycle to start and the end marker;
    sorted: the list head and the marker), then ``write_back`` (the sweep writes ``U0``
    into every word and frees the bank)."""
    words: int
    sorted_firing: bool

    @property
    def setup(self):
        return self.words + 4 if self.sorted_firing else 0

    @property
    def step(self):
        return 2 if self.sorted_firing else self.words + 2

    @property
    def write_back(self):
        return 0 if self.sorted_firing else self.words + 2

    def cycles(self, levels: int, spikes):
        return self.setup + levels * self.step + spikes + self.write_back


def firing_cycles(words: int, levels: int, spikes, sorted_firing: bool):
    """Phase 2 cycles per sample of a hidden core (``spikes`` sent), U0 write-back
    included (:class:`FiringTiming`): the sweep's ``A·(words + 2) + words + 2``, sorting's
    ``words + 4 + 2·A``, plus one per spike."""
    return FiringTiming(words, sorted_firing).cycles(levels, spikes)


def sorting_pays(layer, lanes: int) -> bool:
    """Whether sorted firing takes fewer cycles than the sweep for a hidden layer at
    ``lanes`` (besides the spikes, which cost the same): a precondition of ``"auto"``
    sorting it, which also asks for a gain of the whole pipeline."""
    if layer.is_readout or not hasattr(layer, "ramp"):
        return False
    groups = -(-layer.out_shape[0] // lanes)
    words = groups * int(np.prod(layer.out_shape[1:]))
    return firing_cycles(words, layer.levels, 0, True) < \
        firing_cycles(words, layer.levels, 0, False)


class Reciprocals:
    """The fixed-point reciprocals of a layer's ramps: ``w`` (bits of ``D − 1`` that are
    exact), ``shift`` (``s``) and ``m = ceil(2^s / R)`` per ramp (0 for a padding lane)."""

    def __init__(self, ramps, levels: int):
        ramps = np.asarray(ramps, dtype=np.int64)
        r_max = int(ramps.max(initial=1))
        self.levels = levels
        self.width = max(levels * r_max - 1, 1).bit_length()
        self.shift = self.width + r_max.bit_length()
        self.max_value = -(-(1 << self.shift) // max(int(ramps[ramps > 0].min(initial=1)), 1))

    def of(self, ramps) -> np.ndarray:
        ramps = np.asarray(ramps, dtype=np.int64)
        return np.where(ramps > 0, -(-(1 << self.shift) // np.maximum(ramps, 1)), 0)

    def firing_step(self, u, m):
        """The golden rule in numbers: the step at which ``U = u`` fires with reciprocal
        ``m`` (``None``: no spike). Used by the tests to check the hardware's formula."""
        if u >= 0:
            return 0 if m else None
        d1 = -u - 1
        if not m or d1 >= 1 << self.width:
            return None
        k = (d1 * m >> self.shift) + 1
        return k if k <= self.levels - 1 else None


def _fire_step(core, m, stage, lanes, recip, use_dsp):
    """Two pipeline stages from ``stage`` (``u``, ``m`` per lane, ``ptr``, ``valid``): the
    product ``~U·m`` (registered), then each lane's step and whether it fires."""
    levels = core._layer.levels
    width, shift = recip.width, recip.shift
    product = {"ptr": Signal.like(stage["ptr"], name="prod_ptr"),
               "valid": Signal(name="prod_valid")}
    m.d.sync += [product["ptr"].eq(stage["ptr"]), product["valid"].eq(stage["valid"])]
    steps = []
    for l in range(lanes):
        u, mul = stage["u"][l], stage["m"][l]
        d1 = Signal(len(u) - 1, name=f"d1_{l}")          # −U − 1 where U < 0
        m.d.comb += d1.eq((~u)[:len(u) - 1])
        p = Signal(width + len(mul), name=f"prod{l}")
        nonneg, small, live = (Signal(name=f"{n}{l}") for n in ("nonneg", "small", "live"))
        m.d.sync += [p.eq(multiply(mul, d1[:width], use_dsp)[:len(p)]),
                     nonneg.eq(~u[-1]), small.eq((d1 >> width) == 0), live.eq(mul != 0)]
        q = p >> shift
        step = Signal(index_shape(levels), name=f"fire_step{l}")
        fires = Signal(name=f"fires{l}")
        later = (q <= levels - 2) if levels >= 2 else Const(0)
        m.d.comb += [step.eq(Mux(nonneg, 0, q + 1)),
                     fires.eq(product["valid"] & live & (nonneg | (small & later)))]
        steps.append((step, fires))
    return product, steps


def sorted_firing(core, m, read, constants, full, restore):
    """Phase 2 of hidden core ``core`` (a :class:`~onespike.hdl.core.NeuronCore` built with
    ``sorted_firing=True``) on the membrane ``read`` port and the ``constants`` port."""
    _Sorter(core, m).build(read, constants, full, restore)


class _Sorter:
    """The memories, the pass and the sending of :func:`sorted_firing`."""

    def __init__(self, core, m):
        self.core, self.m = core, m
        self.lanes, self.levels = core.lanes, core.reciprocals.levels
        self.counters = [max(n, 1) for n in [core.groups] + core.position_sizes()]
        self.field_bits = [(n - 1).bit_length() for n in self.counters]
        self.ptr_bits = sum(self.field_bits)
        self.link = data.StructLayout({"ptr": self.ptr_bits, "valid": 1})
        self.step = Signal(index_shape(self.levels))
        self.clearing = Signal()         # after a reset or a marker: heads of ``step`` to 0

    def memories(self):
        m, lanes = self.m, self.lanes
        self.links, self.link_addr = [], Signal(self.ptr_bits)   # the walk's read address
        for l in range(lanes):          # one memory a lane: plain ports for every board
            m.submodules[f"links{l}"] = mem = memory.Memory(shape=self.link,
                                                            depth=1 << self.ptr_bits, init=[])
            read = mem.read_port()
            m.d.comb += read.addr.eq(self.link_addr)
            self.links.append((mem.write_port(), read))
        self.heads = []
        for l in range(lanes):
            m.submodules[f"heads{l}"] = mem = memory.Memory(shape=self.link,
                                                            depth=self.levels, init=[])
            w = mem.write_port()
            self.heads.append((w, mem.read_port(transparent_for=[w])))

    def pass_pipeline(self, read, constants):
        """Stage 1: a word's ``U`` and reciprocals; 2: the products; 3: the steps (and the
        heads read); 4: links and heads written. Returns ``(capture, busy)``."""
        m, core, lanes = self.m, self.core, self.lanes
        s1 = {"u": [Signal.like(read.data[l], name=f"scan_u{l}") for l in range(lanes)],
              "m": [Signal.like(constants.data[l].recip, name=f"scan_m{l}")
                    for l in range(lanes)],
              "ptr": Signal(self.ptr_bits, name="scan_ptr"), "valid": Signal(name="scan_valid")}
        m.d.sync += s1["valid"].eq(0)
        s2, steps = _fire_step(core, m, s1, lanes, core.reciprocals, core._use_dsp)
        s3 = {"ptr": Signal(self.ptr_bits, name="file_ptr"), "valid": Signal(name="file_valid"),
              "steps": [Signal.like(s, name=f"file_step{l}") for l, (s, _) in enumerate(steps)],
              "fires": Signal(lanes, name="file_fires")}
        m.d.sync += [s3["ptr"].eq(s2["ptr"]), s3["valid"].eq(s2["valid"]),
                     s3["fires"].eq(Cat(*[f for _, f in steps]))]
        m.d.sync += [t.eq(s) for t, (s, _) in zip(s3["steps"], steps)]
        for l, ((w, r), (link, _)) in enumerate(zip(self.heads, self.links)):
            m.d.comb += [link.addr.eq(s3["ptr"]), link.en.eq(s3["valid"] & s3["fires"][l]),
                         link.data.eq(r.data),
                         w.en.eq(Mux(self.clearing, 1, s3["valid"] & s3["fires"][l])),
                         w.addr.eq(Mux(self.clearing, self.step, s3["steps"][l])),
                         w.data.eq(Mux(self.clearing, 0, Cat(s3["ptr"], 1))),
                         r.addr.eq(Mux(s2["valid"], steps[l][0], self.step))]
        where = Odometer(self.counters, "scan_at")

        def capture():
            m.d.sync += [s1["valid"].eq(1), s1["ptr"].eq(Cat(*where.values))]
            m.d.sync += [u.eq(read.data[l]) for l, u in enumerate(s1["u"])]
            m.d.sync += [x.eq(constants.data[l].recip) for l, x in enumerate(s1["m"])]
            where.step(m)
        self.where = where
        return capture, s1["valid"] | s2["valid"] | s3["valid"]

    def build(self, read, constants, full, restore):
        m, core, levels, step = self.m, self.core, self.levels, self.step
        self.memories()
        bank, word, nxt = Signal(), Signal(range(core.words)), Signal(range(core.words))
        m.d.comb += [read.addr.eq(core._address(nxt, bank)), constants.addr.eq(nxt),
                     restore["data"].eq(Cat(*[c.u0 for c in constants.data]))]
        capture, busy = self.pass_pipeline(read, constants)
        with m.FSM(name="firing", init="CLEAR"):
            with m.State("CLEAR"):              # after a reset: every step's heads to 0
                m.d.comb += self.clearing.eq(1)
                m.d.sync += step.eq(step + 1)
                with m.If(step == levels - 1):
                    m.d.sync += step.eq(0)
                    m.next = "START"

            def drain():
                m.next = "DRAIN"
            core._restore_states(m, nxt, word, bank, restore, drain, on_word=capture)
            with m.State("WAIT"):      # until the bank is full and its last writes are done
                m.d.comb += nxt.eq(0)
                m.d.sync += word.eq(0)
                self.where.load(m, [0] * len(self.where.values))
                with m.If(full.bit_select(bank, 1) &
                          ~restore["writing"].bit_select(bank, 1)):
                    m.next = "CLEAN"
            with m.State("DRAIN"):     # the last words go through the pipeline
                with m.If(~busy):
                    pass_bank(m, full, bank, 0)
                    m.next = "PICK"
            self.send_states()

    def fields(self, ptr):
        out, at = [], 0
        for bits in self.field_bits:
            out.append(ptr[at:at + bits])
            at += bits
        return out

    def send_states(self):
        """``PICK`` (a step's heads on the read ports), ``WALK`` (one spike per cycle, lane
        by lane), ``MARKER`` (the step's end; its heads cleared)."""
        m, core, lanes, step = self.m, self.core, self.lanes, self.step
        address = self.link_addr
        lane, cur = Signal(range(lanes)), Signal(self.ptr_bits)
        pending = Signal(lanes)          # lanes of this step whose lists are still to walk
        firsts = [Signal(self.link, name=f"first{l}") for l in range(lanes)]

        def pick(mask, values):
            """Walk the lowest lane of ``mask`` from its first link (``values`` per lane),
            or send the marker."""
            chosen = Signal(range(lanes), name="chosen_lane")
            for l in reversed(range(lanes)):
                with m.If(mask[l]):
                    m.d.comb += chosen.eq(l)
            first = Array(values)[chosen]
            with m.If(mask.any()):
                m.d.sync += [lane.eq(chosen), cur.eq(first.ptr),
                             pending.eq(mask & ~(1 << chosen))]
                m.d.comb += address.eq(first.ptr)
                m.next = "WALK"
            with m.Else():
                m.next = "MARKER"

        with m.State("PICK"):
            values = [r.data for _, r in self.heads]
            m.d.sync += [f.eq(v) for f, v in zip(firsts, values)]
            pick(Cat(*[v.valid for v in values]), values)
        with m.State("WALK"):      # the link of ``cur`` is on the read port
            after = Array(r.data for _, r in self.links)[lane]
            m.d.comb += [core._o.valid.eq(1), address.eq(cur),
                         core._o.payload.index.eq(core.neuron_index(self.fields(cur), lane)),
                         core._o.payload.step.eq(step)]
            with m.If(core._o.ready):
                with m.If(after.valid):
                    m.d.sync += cur.eq(after.ptr)
                    m.d.comb += address.eq(after.ptr)
                with m.Else():
                    pick(pending, firsts)
        with m.State("MARKER"):
            m.d.comb += [core._o.valid.eq(1), core._o.payload.end.eq(1),
                         core._o.payload.step.eq(step)]
            with m.If(core._o.ready):
                m.d.comb += self.clearing.eq(1)
                m.d.sync += step.eq(step + 1)
                m.next = "PICK"
                for _, r in self.heads:
                    m.d.comb += r.addr.eq(step + 1)
                with m.If(step == self.levels - 1):
                    m.d.sync += step.eq(0)
                    m.next = "WAIT"
