"""Payload layouts and signatures shared by the cores.

A *spike stream* carries, per sample and per layer, the spikes of time step 0, an
end-of-step marker (``end = 1``, ``index`` unused) for step 0, the spikes of step 1, its marker,
… up to step ``A - 1``: exactly ``A`` markers per sample, the last closing the window. The
step of a spike is ``step`` (0 = first step of the window, activation ``A - step``).
Activation-0 neurons send nothing.
"""

from amaranth.hdl import Elaboratable, Shape, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import Out

from onespike.hdl.arith import const_multiply

__all__ = ["discard", "refuse", "SizedComponent", "pass_bank", "spike_layout", "activation_layout", "logit_layout", "class_layout",
           "TapSignature", "index_shape", "neuron_layout", "flat_index"]


def index_shape(count: int) -> Shape:
    """Unsigned shape for indices ``0..count-1`` (at least one bit)."""
    return Shape.cast(range(max(count, 2)))


def neuron_layout(shape):
    """A neuron of a map: its number in a vector, or ``{x, y, c}`` in an image (so that
    convolution and pooling need no division; the flat C-order index is cheap to form)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if len(shape) == 1:
        return index_shape(shape[0])
    c, h, w = shape
    return data.StructLayout({"x": index_shape(w), "y": index_shape(h), "c": index_shape(c)})


def flat_index(index, shape):
    """The C-order number of ``index`` (a :func:`neuron_layout` value) as a Value."""
    if len(shape) == 1:
        return index
    _, h, w = shape
    return const_multiply(index.c, h * w) + const_multiply(index.y, w) + index.x


def spike_layout(shape, levels: int) -> data.StructLayout:
    return data.StructLayout({
        "index": neuron_layout(shape),    # neuron that fires (ignored when end = 1)
        "step": index_shape(levels),      # time step within the window, 0..A-1
        "end": 1,                         # 1: end of time step ``step``, no spike
    })


def activation_layout(levels: int) -> data.StructLayout:
    return data.StructLayout({"value": range(levels + 1)})


def logit_layout(classes: int, bits: int) -> data.StructLayout:
    return data.StructLayout({
        "index": index_shape(classes),
        "value": signed(bits),
        "last": 1,                        # 1 on the last class of a sample
    })


def class_layout(classes: int) -> data.StructLayout:
    return data.StructLayout({"index": index_shape(classes)})


class TapSignature(wiring.Signature):
    """Read-only copy of a stream's transfers: ``valid`` is high in each cycle in which the
    observed stream transfers (its ``valid`` and ``ready`` both high), with its ``payload``."""

    def __init__(self, payload_shape):
        super().__init__({"valid": Out(1), "payload": Out(payload_shape)})

    @staticmethod
    def observe(m, tap, observed: stream.Interface):
        m.d.comb += [tap.valid.eq(observed.valid & observed.ready),
                     tap.payload.eq(observed.payload)]


def pass_bank(m, full, bank, value):
    """Hand bank ``bank`` (a 1-bit signal) over: set its bit of the 2-bit ``full`` to
    ``value`` (1: filled for the next phase, 0: emptied) and move on to the other bank."""
    with m.If(bank):
        m.d.sync += full[1].eq(value)
    with m.Else():
        m.d.sync += full[0].eq(value)
    m.d.sync += bank.eq(~bank)


def discard(component):
    """Tell Amaranth that ``component`` is meant never to be elaborated (built only to be
    asked about its sizes, or half-built before an error).

    The one place that sets Amaranth's private ``_MustUse__silence`` (pinned amaranth
    0.5.10): the public pragma, ``# amaranth: UnusedElaboratable=no``, silences a whole
    source file, including the components a user forgets to elaborate."""
    component._MustUse__silence = True
    for value in vars(component).values():      # its sub-components were never used either
        for part in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(part, Elaboratable) and not getattr(part, "_MustUse__silence", 0):
                discard(part)
    return component


class SizedComponent(wiring.Component):
    """A component in two parts: its hardware, a subclass of this class, and its sizes, a
    plain class after it among the bases (``class DenseCore(NeuronCore, DenseSizes)``).
    The sizes check the arguments and answer everything a planner asks (memories, cycles,
    multipliers), so that planners build the sizes alone and no component. The component
    runs the sizes' constructor, refusing bad arguments without Amaranth's must-use
    warning, then makes the ports :meth:`members` gives."""

    def __init__(self, *args, **kwargs):
        sizes = next(c for c in type(self).__mro__ if "__init__" in vars(c)
                     and not issubclass(c, Elaboratable) and c is not object)
        try:
            sizes.__init__(self, *args, **kwargs)
        except Exception as e:
            refuse(self, e)
        super().__init__(self.members())

    def members(self) -> dict:
        """The signature's members (``{"i": In(...), "o": Out(...)}``)."""
        raise NotImplementedError


def refuse(component, error):
    """Raise ``error`` from a component's constructor without Amaranth later warning that
    the half-built component was never elaborated."""
    discard(component)
    raise error
