"""Payload layouts and signatures shared by the cores.

A *spike stream* carries, per sample and per layer, the spikes of time step 0, an
end-of-step marker (``end = 1``, ``index`` unused) for step 0, the spikes of step 1, its marker,
… up to step ``A - 1``: exactly ``A`` markers per sample, the last closing the window. The
step of a spike is ``step`` (0 = first step of the window, activation ``A - step``).
Activation-0 neurons send nothing.
"""

from amaranth.hdl import Shape, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import Out

__all__ = ["refuse", "spike_layout", "activation_layout", "logit_layout", "class_layout",
           "TapSignature", "index_shape"]


def index_shape(count: int) -> Shape:
    """Unsigned shape for indices ``0..count-1`` (at least one bit)."""
    return Shape.cast(range(max(count, 2)))


def spike_layout(neurons: int, levels: int) -> data.StructLayout:
    return data.StructLayout({
        "index": index_shape(neurons),    # neuron that fires (ignored when end = 1)
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


def refuse(component, error):
    """Raise ``error`` from a component's constructor without Amaranth later warning that
    the half-built component was never elaborated."""
    component._MustUse__silence = True
    raise error
