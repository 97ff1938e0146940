"""The accelerator top: encoder → layer cores (conv, max-pool, dense) → readout → argmax,
joined by streams."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.hdl.argmax import Argmax
from onespike.hdl.plan import AcceleratorPlan, COMPONENTS
from onespike.hdl.streams import SizedComponent, TapSignature, activation_layout, class_layout
from onespike.ir import Network

__all__ = ["Accelerator", "LayerPipeline"]


class LayerPipeline(SizedComponent):
    """``encoder`` → ``cores`` → ``argmax`` joined by streams, a tap on every stream: the
    hardware every coding's top shares (ports ``i``, ``o``, ``tap_<n>``, ``tap_logits``),
    built from a plan (:class:`~onespike.hdl.plan.PipelinePlan`) whose parts are
    components; a subclass adds the ``argmax``."""

    def members(self):
        net = self._net
        members = {
            "i": In(stream.Signature(activation_layout(net.encoder.levels))),
            "o": Out(stream.Signature(class_layout(net.num_classes))),
        }
        streams = [self.encoder.o] + [core.o for core in self.cores[:-1]]
        for n, s in enumerate(streams):
            members[f"tap_{n}"] = Out(TapSignature(s.payload.shape()))
        members["tap_logits"] = Out(TapSignature(self.cores[-1].o.payload.shape()))
        return members

    def elaborate(self, platform):
        m = Module()
        m.submodules.encoder = self.encoder
        for n, core in enumerate(self.cores):
            m.submodules[f"layer{n}"] = core
        m.submodules.argmax = self.argmax
        wiring.connect(m, wiring.flipped(self.i), self.encoder.i)
        previous = self.encoder.o
        for n, core in enumerate(self.cores):
            TapSignature.observe(m, getattr(self, f"tap_{n}"), previous)
            wiring.connect(m, previous, core.i)
            previous = core.o
        TapSignature.observe(m, self.tap_logits, previous)
        wiring.connect(m, previous, self.argmax.i)
        wiring.connect(m, self.argmax.o, wiring.flipped(self.o))
        return m


class Accelerator(LayerPipeline, AcceleratorPlan):
    """A TTFS accelerator for a dense :class:`~onespike.ir.Network`.

    Ports (Verilog names ``<port>__<field>``; clock ``clk``, synchronous reset ``rst``):

    * ``i`` (stream in): one sample's input activations, ``i__payload`` = activation
      ``0..A0`` of input neuron 0, 1, … in order; a transfer happens in a cycle with
      ``i__valid`` and ``i__ready`` both high.
    * ``o`` (stream out): the class of each sample, in order (``o__payload`` = class index).
    * ``tap_<n>`` (out, observe only): every transfer on the spike stream that feeds layer
      ``n`` (``tap_0`` = input spikes): ``tap_<n>__valid`` high for one cycle per spike or
      end-of-step marker, ``tap_<n>__payload`` = ``{index, step, end}`` (LSB first).
    * ``tap_logits``: every logit the readout sends, ``{index, value, last}``.

    A spike with ``step = s`` on ``tap_<n>`` fires at global time step ``t_n + s`` of the
    golden model (``net.window_starts()[n]``). ``use_dsp``: each lane's two multiplies
    (``w·(A_in − s)`` and ``k·R``) are plain ``*`` that synthesis may put in DSP blocks;
    ``False`` builds them from shifted adds (LUTs only). ``firing``: how a hidden core's
    phase 2 finds its spikes, ``"sweep"`` (test every state word in every step) or
    ``"sorted"`` (one pass files each neuron on its step's list, :mod:`~onespike.hdl.firing`),
    for every layer or one per layer; ``"auto"`` (:func:`~onespike.hdl.plan.choose_firing`)
    sorts only the layers whose sweep limits the pipeline. The hardware of an
    :class:`~onespike.hdl.plan.AcceleratorPlan` of the same arguments, whose sizes it
    answers.
    """

    PARTS = COMPONENTS

    def __init__(self, net: Network, **options):
        super().__init__(net, **options)
        self.argmax = Argmax(classes=net.num_classes, bits=net.widths()[-1].membrane_bits)
