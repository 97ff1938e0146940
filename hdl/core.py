"""The B1 neuron dynamics for one synaptic layer, shared by the dense and conv cores.

A core keeps ``words`` state words of ``P`` lanes (one lane per output channel of a group,
``groups = ceil(channels / P)``). Both membrane banks live in one memory (the bank is the
address's top bit); a word holds ``U = V − A·R`` per lane (so the threshold test is a sign
bit), starting at ``U0 = bias − A·R``, which phase 2 reads with the ramp ``R`` as one packed
constants word and writes back into each word it is done with.

A subclass says which state words an input spike reaches and with which weight word
(:meth:`NeuronCore.synapse_bounds`, :meth:`NeuronCore.synapse`, stepped by nested counters
with per-spike bounds) and how a word and lane name an output neuron
(:meth:`NeuronCore.neuron_index`).
"""

import functools
from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Array, Cat, Const, EnableInserter, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream
from amaranth.lib.wiring import In, Out

from onespike.hdl.arith import const_multiply, multiply
from onespike.hdl.counters import Odometer, RangeCounter
from onespike.hdl.encoder import flag, positive
from onespike.hdl.firing import Reciprocals, sorted_firing
from onespike.hdl.single_port import PACE, SinglePortMembranes, pace_domain
from onespike.hdl.streams import (SizedComponent, index_shape, logit_layout, pass_bank,
                                  spike_layout)
from onespike.ir import LayerWidths, signed_bits

__all__ = ["NeuronCore", "NeuronSizes", "Odometer", "RangeCounter"]


class NeuronSizes:
    """The sizes of a :class:`NeuronCore` as plain data: the arguments checked, the state
    words, memories, multipliers and timing a planner asks for, with no hardware built. A
    subclass (:class:`~onespike.hdl.dense.DenseSizes`, :class:`~onespike.hdl.conv.ConvSizes`)
    says how its layer's synapses map onto the words."""

    def __init__(self, layer, *, in_levels: int, widths: LayerWidths, lanes: int,
                 use_dsp: bool = True, sorted_firing: bool = False, single_port: bool = False,
                 banks: int = 2):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"Lane count must be a positive integer, not {lanes!r}")
        self._use_dsp = flag(use_dsp, "use_dsp")
        self._sorted = flag(sorted_firing, "sorted_firing") and not layer.is_readout
        self._single_port = flag(single_port, "single_port")
        if banks not in (1, 2) or isinstance(banks, bool):
            raise ValueError(f"membrane banks must be 1 or 2, not {banks!r}")
        self._banks = banks
        if self._single_port and (layer.is_readout or self._sorted):
            raise ValueError("single-port membranes are for hidden layers with sweep "
                             "firing (not the readout, not sorted firing)")
        self._channels = layer.weight.shape[0]
        if lanes > self._channels:
            raise ValueError(f"Lane count {lanes} exceeds the layer's {self._channels} "
                             f"channels")
        self._layer = layer
        self._lanes = lanes
        self._in_levels = positive(in_levels, "Input level count")
        self._widths = widths
        self._outputs = int(np.prod(layer.out_shape))

    # -- what a subclass provides ----------------------------------------------------
    positions = 1                       # output positions per channel (state words / groups)

    def weight_words(self) -> np.ndarray:
        """``(depth, lanes)`` weight memory contents."""
        raise NotImplementedError

    def synapse_sizes(self) -> list:
        """Sizes of the nested counters that step through one spike's synapses."""
        raise NotImplementedError

    def synapse_bounds(self, index):
        """``([(first, last), ...] per counter, any)`` for input neuron ``index``: the
        counters run over exactly the synapses that exist (``any`` = 0: none)."""
        raise NotImplementedError

    def synapse(self, index, counters):
        """``(state word, weight word)`` for input neuron ``index`` at ``counters``."""
        raise NotImplementedError

    def synapse_counts(self) -> np.ndarray:
        """Cycles of phase 1 per input spike, for every input neuron (flat C order)."""
        raise NotImplementedError

    def neuron_index(self, word_counters, lane):
        """The ``o`` index of lane ``lane`` of the state word at ``word_counters``
        (``[group, *position]``)."""
        raise NotImplementedError

    def position_sizes(self) -> list:
        return []

    def neuron_constants(self):
        """``(bias, ramp)`` per state word and lane, ``(words, lanes)`` each."""
        raise NotImplementedError

    shared_constants = False            # every position of a group has the same constants

    # -- sizes -------------------------------------------------------------------------
    @property
    def inputs(self):
        """Incoming neurons (the input spike map's size)."""
        return int(np.prod(self._layer.in_shape))

    @property
    def lanes(self):
        return self._lanes

    @property
    def groups(self):
        return -(-self._channels // self._lanes)

    @property
    def multipliers(self):
        """16×16 DSP blocks the lane multiplies take with ``use_dsp``: per lane the
        integration's ``w·(A_in − s)`` and, in a hidden layer, the ramp's ``k·R`` (one block
        each unless an operand is wider than 16 bits) or, sorted, the reciprocal's."""
        def blocks(a_bits, b_bits):          # operand widths, sign bits included
            return -(-a_bits // 16) * -(-b_bits // 16)
        per_lane = blocks(self.weight_bits, self._in_levels.bit_length() + 1)
        if self._sorted:         # unsigned × unsigned: yosys takes up to 19 bits a block
            def chunks(bits):    # (measured on synth_ecp5), else 18-bit pieces
                return 1 if bits <= 19 else -(-bits // 18)
            recip = self.reciprocals
            per_lane += chunks(recip.width) * chunks(recip.max_value.bit_length())
        elif not self._layer.is_readout:
            ramp_bits = int(self._layer.ramp.max(initial=1)).bit_length()
            per_lane += blocks(ramp_bits + 1, self._layer.levels.bit_length() + 1)
        return self._lanes * per_lane

    @property
    def words(self):
        return self.groups * self.positions

    @property
    def single_port(self):
        """The membranes are in one single-port RAM and the core takes one step every
        :data:`~onespike.hdl.single_port.PACE` cycles (:mod:`~onespike.hdl.single_port`)."""
        return self._single_port

    @property
    def banks(self):
        """Membrane banks: 2 (the next sample integrates while this one fires) or 1 (half
        the membrane memory; a sample integrates only once the one before has fired)."""
        return self._banks

    @property
    def pace(self):
        """Clock cycles per step of the core's logic."""
        return PACE if self._single_port else 1

    @property
    def is_readout(self):
        return self._layer.is_readout

    @property
    def sorted_firing(self):
        """Phase 2 files each neuron on its step's list in one pass (:mod:`.firing`)
        instead of sweeping the state words in every step."""
        return self._sorted

    @functools.cached_property
    def reciprocals(self) -> Reciprocals:
        """The ramps' reciprocals for sorted firing."""
        return Reciprocals(self._layer.ramp, self._layer.levels)

    @property
    def reset_cycles(self):
        """Cycles from a reset until ``i`` is ready: both banks restored (and, with sorted
        firing, every step's list heads cleared first); a paced core takes ``pace`` cycles
        a step."""
        return self.pace * (2 * self.words + 2 + (self._layer.levels if self._sorted else 0))

    @functools.cached_property
    def spike_cycles(self) -> np.ndarray:
        """:meth:`synapse_counts`, computed once."""
        return np.asarray(self.synapse_counts(), dtype=np.int64)

    @property
    def fan_out(self):
        """Most cycles of phase 1 one input spike can take."""
        return int(self.spike_cycles.max(initial=1))

    @property
    def weight_bits(self):
        return signed_bits(int(np.abs(self._layer.weight).max(initial=0)))

    @functools.cached_property
    def weight_contents(self) -> np.ndarray:
        """:meth:`weight_words`, computed once."""
        return self.weight_words()

    @property
    def weight_memory_bits(self):
        return len(self.weight_contents) * self.lanes * self.weight_bits

    @property
    def _word_bits(self):
        return max(self.words - 1, 1).bit_length()

    @property
    def state_depth(self):
        """Membrane memory words: bank 0 at ``0..words-1``, bank 1 from ``2**word_bits``."""
        return (1 << self._word_bits) + self.words if self._banks == 2 else self.words

    @property
    def state_memory_bits(self):
        """Bits of the membrane banks."""
        return self.state_depth * self.lanes * self._widths.membrane_bits

    def _channel_lanes(self, values, fill=0):
        """Per-channel values as ``(groups, lanes)``, ``fill`` in the padding lanes."""
        padded = np.full(self.groups * self.lanes, fill, dtype=np.int64)
        padded[:len(values)] = values
        return padded.reshape(self.groups, self.lanes)

    @property
    def constant_rows(self):
        """Rows of the constants memory: one per group of lanes where the positions of a
        group share their constants (:attr:`shared_constants`: a convolution's bias per
        channel), else one per state word (a bias that depends on the position)."""
        return self.groups if self.shared_constants else self.words

    def _constant_words(self):
        """``U0 = bias − A·R`` and ``R`` per constants row and lane (:attr:`constant_rows`);
        padding lanes get ``U0 = −1``, ``R = 0`` (they never fire)."""
        bias, ramp = self.neuron_constants()
        real = np.zeros((self.words, self.lanes), dtype=bool)
        real.reshape(self.groups, -1, self.lanes)[:] = \
            self._channel_lanes(np.ones(self._channels), 0)[:, None, :].astype(bool)
        levels = 0 if self._layer.is_readout else self._layer.levels
        u0, ramp = np.where(real, bias - levels * ramp, -1), np.where(real, ramp, 0)
        if self.shared_constants:       # the first position of each group stands for all
            u0, ramp = (v.reshape(self.groups, -1, self.lanes)[:, 0] for v in (u0, ramp))
        return u0, ramp


class NeuronCore(SizedComponent):
    """Phase 1 (integration, into the free bank): an input spike of step ``s`` adds its
    whole effect at once, ``w·(A_in − s)`` (the current it starts, integrated up to the
    window's end), into every state word it reaches: one word per cycle, the weight read,
    the product and the read-modify-write of ``U`` in a four-stage pipeline. End-of-step
    markers cost one cycle each; after ``in_levels`` of them the bank goes to phase 2 and
    the next sample integrates into the other bank. No sweep over the state words.

    Phase 2, concurrently, on the full bank (it only reads the membranes):

    * hidden layer (firing): in step ``k = 0..A-1`` the sweep registers each word's ``U``,
      ``k·R`` and ``R`` per lane, then tests ``S = U + k·R``: a neuron fires in the step
      where ``S ≥ 0`` first holds (the sign bit; ``k = 0`` or ``S < R``). Crossings are
      sent on ``o`` one per cycle (``step = k``), then the step's end marker: ``words + 2``
      cycles a step plus one per spike. With ``sorted_firing`` phase 2 is
      :func:`~onespike.hdl.firing.sorted_firing` instead.
    * readout: the membranes ``U`` (``R = 0``: ``U = V``) are sent on ``o`` as logits.

    Then phase 2 writes ``U0`` back into every word of its bank (one per cycle, in the
    cycles in which integration does not write) and frees the bank.

    Backpressure on ``o`` stalls phase 2 only. After a reset phase 2 writes ``U0`` into both
    banks (``2·words + 1`` cycles) before ``i`` is ready.

    This is the hardware; a core class also takes its sizes, a :class:`NeuronSizes`
    subclass, among its bases (:class:`~onespike.hdl.streams.SizedComponent`).
    """

    def members(self):
        layer = self._layer
        o = logit_layout(self._outputs, self._widths.membrane_bits) if layer.is_readout \
            else spike_layout(layer.out_shape, layer.levels)
        return {"i": In(stream.Signature(spike_layout(layer.in_shape, self._in_levels))),
                "o": Out(stream.Signature(o))}

    def _constants_port(self, m, constants):
        """The constants read port as phase 2 sees it: addressed by state word (``addr``,
        ``en``, ``data``). Shared constants are read at the word's group: phase 2 asks in
        each cycle for the word it asked for before, the next word or word 0, so the group
        follows from the last one, counted with the position (no division)."""
        port = self._read_port(m, constants)
        if not self.shared_constants:
            return port
        view = SimpleNamespace(addr=Signal(range(self.words), name="constants_word"),
                               en=Signal(init=1, name="constants_en"), data=port.data)
        positions = self.positions
        at = Signal.like(view.addr, name="constants_at")      # the word asked for last
        group, place = Signal(range(self.groups)), Signal(range(positions))
        row, here = Signal.like(group), Signal.like(place)
        wraps = place == positions - 1
        with m.If(view.addr == 0):
            m.d.comb += [row.eq(0), here.eq(0)]
        with m.Elif(view.addr[0] ^ at[0]):                    # the next word
            m.d.comb += [row.eq(group + wraps), here.eq(Mux(wraps, 0, place + 1))]
        with m.Else():
            m.d.comb += [row.eq(group), here.eq(place)]
        m.d.sync += [at.eq(view.addr), group.eq(row), place.eq(here)]
        m.d.comb += [port.addr.eq(self._constant_row(row)), port.en.eq(view.en)]
        return view

    def _constant_row(self, group):
        """The constants row of ``group`` (a planted fault overrides it)."""
        return group

    # -- hardware ----------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        if not self._single_port:
            self._i, self._o, self._step_end = self.i, self.o, None
            self._build(m)
            return m
        phase, step_end = pace_domain(m)
        self._step_end = step_end
        # the core's own view of its streams: a transfer only in a step's last cycle
        self._i = SimpleNamespace(valid=Signal(), ready=Signal(),
                                  payload=Signal(self.i.payload.shape()))
        self._o = SimpleNamespace(valid=Signal(), ready=Signal(),
                                  payload=Signal(self.o.payload.shape()))
        m.d.comb += [self._i.valid.eq(self.i.valid & step_end), self._i.payload.eq(self.i.payload),
                     self.i.ready.eq(self._i.ready & step_end),
                     self.o.valid.eq(self._o.valid & step_end), self.o.payload.eq(self._o.payload),
                     self._o.ready.eq(self.o.ready & step_end)]
        self._build(m, SinglePortMembranes(shape=self._state_layout(), depth=self.state_depth,
                                           phase=phase))
        return EnableInserter(step_end)(m)

    def _read_port(self, m, mem):
        """A read port of ROM ``mem``; in a paced core one in the ``pace`` domain that
        reads only in a step's last cycle (explicitly: a board may build the memory after
        the ``EnableInserter`` has run)."""
        if self._step_end is None:
            return mem.read_port()
        port = mem.read_port(domain="pace")
        view = SimpleNamespace(addr=port.addr, data=port.data,
                               en=Signal(init=1, name=f"{port.addr.name}_en"))
        m.d.comb += port.en.eq(view.en & self._step_end)
        return view

    def _state_layout(self):
        return data.ArrayLayout(signed(self._widths.membrane_bits), self._lanes)

    def _build(self, m, membranes=None):
        """The core's logic into ``m``; ``membranes``: the membrane memory, if not an
        Amaranth ``Memory`` with one write and two read ports."""
        lanes = self._lanes
        membrane = signed(self._widths.membrane_bits)
        contents = self.weight_contents
        m.submodules.weights = weights = memory.Memory(
            shape=data.ArrayLayout(signed(self.weight_bits), lanes), depth=len(contents),
            init=contents.tolist(), attrs={"onespike_role": "weights"})  # for board mapping

        u0, ramp = self._constant_words()
        slope = "recip" if self._sorted else "ramp"     # what phase 2 needs of R
        if self._sorted:
            ramp = self.reciprocals.of(ramp)
        lane = data.StructLayout({"u0": membrane,
                                  slope: range(max(int(ramp.max(initial=0)), 1) + 1)})
        m.submodules.constants = constants = memory.Memory(
            shape=data.ArrayLayout(lane, lanes), depth=self.constant_rows,
            init=[[{"u0": u, slope: r} for u, r in zip(*word)]
                  for word in zip(u0.tolist(), ramp.tolist())])
        state = self._state_layout()
        if membranes is None:
            membranes = memory.Memory(shape=state, depth=self.state_depth, init=[])
        m.submodules.membrane = membranes
        write = membranes.write_port()
        full = Signal(2)                     # bank belongs to phase 2
        # phase 2 writes U0 back into the words it is done with, in the cycles in which
        # integration does not write; and after a reset into every word (then ``ready``)
        restore = {"en": Signal(), "addr": Signal(range(self.state_depth)),
                   "data": Signal(state), "busy": Signal(), "ready": Signal(),
                   "writing": Signal(2)}          # integration writes into bank 0 / 1
        self._integration(m, self._read_port(m, weights), write,
                          membranes.read_port(transparent_for=[write]), full, restore)
        phase2 = self._readout if self._layer.is_readout else \
            functools.partial(sorted_firing, self) if self._sorted else self._firing
        phase2(m, membranes.read_port(), self._constants_port(m, constants), full, restore)

    def _spike_multiple(self, step):
        """``A_in − s``: the steps from a spike's step to its window's end."""
        return self._in_levels - step

    def _address(self, word, bank):
        bits = self._word_bits
        word = word[:bits] if len(word) >= bits else Cat(word, Const(0, bits - len(word)))
        return Cat(word, bank) if self._banks == 2 else word   # one bank: both are one

    def _bank_free(self, full, bank):
        """Integration may take a sample into ``bank``: phase 2 is done with it (with one
        bank: with both, so that the sample before has fired; a planted fault drops
        that)."""
        return ~full.bit_select(bank, 1) if self._banks == 2 else full == 0

    def _integration(self, m, weight, write, read, full, restore):
        lanes, last_tick = self._lanes, self._in_levels - 1
        bank = Signal()
        spike = Signal(self._i.payload.index.shape())      # input neuron being added
        multiple = Signal(range(self._in_levels + 1))      # A_in − step of that spike
        counters = RangeCounter(self.synapse_sizes(), "synapse")
        ticks = Signal(range(self._in_levels))
        # stage 1: the weights of the word are on the weight port (then registered);
        # stage 2: the product w·multiple is formed and the word's U read;
        # stage 3: the word is written with U + w·multiple
        stage = [{"word": Signal(range(self.words), name=f"s{i}_word"),
                  "valid": Signal(name=f"s{i}_valid"), "bank": Signal(name=f"s{i}_bank"),
                  "multiple": Signal.like(multiple, name=f"s{i}_multiple")}
                 for i in (1, 2, 3)]
        s1, s2, s3 = stage
        held = [Signal.like(weight.data[l], name=f"w{l}") for l in range(lanes)]
        products = [Signal(signed(self.weight_bits + multiple.shape().width + 1),
                           name=f"product{l}") for l in range(lanes)]
        m.d.sync += s1["valid"].eq(0)
        for before, after in ((s1, s2), (s2, s3)):
            m.d.sync += [after[k].eq(before[k]) for k in after]
        m.d.sync += [held[l].eq(weight.data[l]) for l in range(lanes)]
        m.d.sync += [products[l].eq(multiply(held[l], s2["multiple"], self._use_dsp))
                     for l in range(lanes)]
        m.d.comb += [read.addr.eq(self._address(s2["word"], s2["bank"])),
                     restore["busy"].eq(s3["valid"]),
                     restore["writing"][0].eq(Cat(*[x["valid"] & ~x["bank"] for x in stage]).any()),
                     restore["writing"][1].eq(Cat(*[x["valid"] & x["bank"] for x in stage]).any())]
        with m.If(s3["valid"]):
            m.d.comb += [write.addr.eq(self._address(s3["word"], s3["bank"])), write.en.eq(1)]
            m.d.comb += [write.data[l].eq(read.data[l] + products[l]) for l in range(lanes)]
        with m.Else():
            m.d.comb += [write.addr.eq(restore["addr"]), write.en.eq(restore["en"]),
                         write.data.eq(restore["data"])]

        def present(index, values, times):
            state_word, weight_word = self.synapse(index, values)
            m.d.comb += weight.addr.eq(weight_word)
            m.d.sync += [s1["word"].eq(state_word), s1["valid"].eq(1), s1["bank"].eq(bank),
                         s1["multiple"].eq(times)]

        def accept():
            payload = self._i.payload
            m.d.comb += self._i.ready.eq(self._bank_free(full, bank) & restore["ready"])
            with m.If(self._i.valid & self._i.ready):
                with m.If(payload.end):
                    m.d.sync += ticks.eq(ticks + 1)
                    with m.If(ticks == last_tick):
                        m.d.sync += ticks.eq(0)
                        pass_bank(m, full, bank, 1)
                with m.Else():
                    bounds, exists = self.synapse_bounds(payload.index)
                    times = self._spike_multiple(payload.step)
                    m.d.sync += [spike.eq(payload.index), multiple.eq(times)]
                    with m.If(exists):
                        counters.load(m, bounds)
                        present(payload.index, [first for first, _ in bounds], times)
                        m.next = "ADD"

        with m.FSM(name="integration"):
            with m.State("INTEGRATE"):
                accept()
            with m.State("ADD"):     # the synapse at ``counters`` is on the weight port
                with m.If(counters.last()):
                    m.next = "INTEGRATE"
                    accept()
                with m.Else():
                    after = counters.next_values()
                    m.d.sync += [v.eq(a) for v, a in zip(counters.values, after)]
                    present(spike, after, multiple)

    def _restore_states(self, m, nxt, word, bank, restore, done, on_word=None):
        """FSM states that write ``U0`` into the words of a bank, in cycles in which
        integration does not write (``nxt``: the word the constants port fetches; ``word``:
        the word whose constants are on it). ``START`` → ``RESTORE`` does both banks after
        a reset, then goes to ``WAIT``; ``CLEAN`` does ``bank`` and calls ``done()``, and
        ``on_word()`` in each cycle in which it moves past a word (whose ``U`` is then on
        the membrane port)."""
        last = word == self.words - 1
        cleared = Signal()                   # after a reset: bank 0 done, now bank 1
        target = Signal()

        def sweep(finished, each=None):
            m.d.comb += [restore["en"].eq(1), restore["addr"].eq(self._address(word, target)),
                         nxt.eq(word)]
            with m.If(~restore["busy"]):
                if each is not None:
                    each()
                m.d.comb += nxt.eq(Mux(last, 0, word + 1))
                m.d.sync += word.eq(word + 1)
                with m.If(last):
                    m.d.sync += word.eq(0)
                    finished()

        with m.State("START"):
            m.d.comb += nxt.eq(0)
            m.d.sync += word.eq(0)
            m.next = "RESTORE"
        with m.State("RESTORE"):
            m.d.comb += target.eq(cleared)

            def after_bank():
                m.d.sync += cleared.eq(1)
                with m.If(cleared):
                    m.d.sync += restore["ready"].eq(1)
                    m.next = "WAIT"
            sweep(after_bank)
        with m.State("CLEAN"):
            m.d.comb += target.eq(bank)
            sweep(done, on_word)

    def _crossings(self, m, read, constants, step):
        """The firing pipeline register (``U``, ``k·R`` and ``R`` per lane of one word) and
        which of its lanes cross in step ``step``: ``S = U + k·R ≥ 0`` (the sign bit), for
        the first time (``k = 0`` or ``S < R``)."""
        held = [{"u": Signal(read.data[l].shape(), name=f"held_u{l}"),
                 "kr": Signal(signed(self._widths.membrane_bits + 1), name=f"held_kr{l}"),
                 "r": Signal.like(constants.data[l].ramp, name=f"held_r{l}")}
                for l in range(self._lanes)]
        crossings = []
        for l, h in enumerate(held):
            s = Signal(signed(self._widths.membrane_bits + 1), name=f"s{l}")
            m.d.comb += s.eq(h["u"] + h["kr"])
            crossings.append(~s[-1] & ((step == 0) | (s < h["r"])))
        return held, Cat(*crossings)

    def _firing(self, m, read, constants, full, restore):
        layer, lanes = self._layer, self._lanes
        bank = Signal()
        word = Signal(range(self.words))     # the word on the read ports
        step = Signal(index_shape(layer.levels))
        pending, primed, held_last = Signal(lanes), Signal(), Signal()
        last_word = word == self.words - 1
        where = Odometer([self.groups] + self.position_sizes(), "fire_at")
        nxt = Signal.like(word)
        m.d.comb += [nxt.eq(Mux(last_word, 0, word + 1)),
                     read.addr.eq(self._address(nxt, bank)), constants.addr.eq(nxt),
                     restore["data"].eq(Cat(*[c.u0 for c in constants.data]))]
        held, crossed = self._crossings(m, read, constants, step)
        held_where = [Signal.like(v, name=f"held_{v.name}") for v in where.values]

        def first_word():
            m.d.comb += nxt.eq(0)
            m.d.sync += [word.eq(0), primed.eq(0)]
            where.load(m, [0] * len(where.values))

        def hold_ports():    # keep the word: the crossing test reaches the enables only
            m.d.comb += [read.en.eq(0), constants.en.eq(0)]

        def hold_next():
            """Move the word on the ports into the pipeline register."""
            m.d.sync += [primed.eq(1), held_last.eq(last_word), word.eq(word + 1)]
            m.d.sync += [h.eq(v) for h, v in zip(held_where, where.values)]
            for l, h in enumerate(held):
                ramp = constants.data[l].ramp
                m.d.sync += [h["u"].eq(read.data[l]), h["r"].eq(ramp),
                             h["kr"].eq(multiply(ramp, step, self._use_dsp))]
            where.step(m)

        with m.FSM(name="firing"):
            def release():
                pass_bank(m, full, bank, 0)
                m.next = "WAIT"
            self._restore_states(m, nxt, word, bank, restore, release)
            with m.State("WAIT"):    # until the bank is full and its last writes are done
                first_word()
                with m.If(full.bit_select(bank, 1) & ~restore["writing"].bit_select(bank, 1)):
                    m.next = "FIRE"
            with m.State("FIRE"):
                with m.If(primed & crossed.any()):
                    hold_ports()
                    m.d.sync += pending.eq(crossed)
                    m.next = "EMIT"
                with m.Elif(primed & held_last):
                    m.next = "STEP_END"
                with m.Else():
                    hold_next()
            with m.State("EMIT"):   # one spike per cycle, lowest lane first
                hold_ports()
                chosen = Signal(range(lanes))
                for l in reversed(range(lanes)):
                    with m.If(pending[l]):
                        m.d.comb += chosen.eq(l)
                m.d.comb += [self._o.valid.eq(1),
                             self._o.payload.index.eq(self.neuron_index(held_where, chosen)),
                             self._o.payload.step.eq(step)]
                rest = pending & (pending - 1)
                with m.If(self._o.ready):
                    m.d.sync += pending.eq(rest)
                    with m.If(rest == 0):
                        with m.If(held_last):
                            m.next = "STEP_END"
                        with m.Else():
                            hold_next()
                            m.d.comb += [read.en.eq(1), constants.en.eq(1)]
                            m.next = "FIRE"
            with m.State("STEP_END"):
                m.d.comb += [self._o.valid.eq(1), self._o.payload.end.eq(1),
                             self._o.payload.step.eq(step)]
                first_word()
                with m.If(self._o.ready):
                    m.d.sync += step.eq(step + 1)
                    m.next = "FIRE"
                    with m.If(step == layer.levels - 1):
                        m.d.sync += step.eq(0)
                        m.next = "CLEAN"      # then write U0 back and free the bank

    def _readout(self, m, read, constants, full, restore):
        lanes = self._lanes
        bank = Signal()
        word = Signal(range(self.words))
        logits = Array(Signal(signed(self._widths.membrane_bits), name=f"logit{l}")
                       for l in range(lanes))
        lane = Signal(range(lanes))
        index = const_multiply(word, lanes) + lane
        nxt = Signal.like(word)               # the word the read ports fetch
        m.d.comb += [nxt.eq(word), read.addr.eq(self._address(nxt, bank)),
                     constants.addr.eq(nxt),
                     restore["data"].eq(Cat(*[c.u0 for c in constants.data]))]
        with m.FSM(name="readout"):
            def release():
                pass_bank(m, full, bank, 0)
                m.next = "WAIT"
            self._restore_states(m, nxt, word, bank, restore, release)
            with m.State("WAIT"):
                m.d.comb += nxt.eq(0)
                m.d.sync += word.eq(0)
                with m.If(full.bit_select(bank, 1) & ~restore["writing"].bit_select(bank, 1)):
                    m.next = "LOAD"
            with m.State("LOAD"):   # take one word of logits
                m.d.sync += [logits[l].eq(read.data[l]) for l in range(lanes)]
                m.d.sync += lane.eq(0)
                m.next = "SEND"
            with m.State("SEND"):
                last = index == self._outputs - 1
                m.d.comb += [self._o.valid.eq(1), self._o.payload.index.eq(index),
                             self._o.payload.value.eq(logits[lane]),
                             self._o.payload.last.eq(last)]
                with m.If(self._o.ready):
                    m.d.sync += lane.eq(lane + 1)
                    with m.If(last):
                        m.d.comb += nxt.eq(0)
                        m.d.sync += word.eq(0)
                        m.next = "CLEAN"      # then write U0 back and free the bank
                    with m.Elif(lane == lanes - 1):
                        m.d.comb += nxt.eq(word + 1)
                        m.d.sync += word.eq(word + 1)
                        m.next = "LOAD"
