"""The dense baseline accelerator: the same integer network and ports as
:class:`~onespike.hdl.top.Accelerator`, computed by multiply-accumulate over activation
streams instead of spikes (``--coding dense``)."""

from onespike.hdl.argmax import Argmax
from onespike.hdl.plan import DENSE_COMPONENTS, DensePlan
from onespike.hdl.top import LayerPipeline
from onespike.ir import Network

__all__ = ["DenseAccelerator"]


class DenseAccelerator(LayerPipeline, DensePlan):
    """A layer-pipelined integer accelerator for a :class:`~onespike.ir.Network`.

    Ports as :class:`~onespike.hdl.top.Accelerator` (``i``, ``o``, ``tap_<n>``,
    ``tap_logits``), except that ``tap_<n>`` observes the *activation* stream that feeds
    layer ``n`` (``tap_0``: the input): ``tap_<n>__valid`` high for one cycle per transfer,
    ``tap_<n>__payload`` = ``{index, value, end}`` (LSB first). Per sample the stream
    carries activations (``value``; with ``skip_zeros`` only the non-zero ones; a neuron not
    sent has activation 0), in any order, then one transfer with ``end = 1``.

    ``lanes``: as for the TTFS accelerator (one int, capped per layer, or one per layer);
    ``skip_zeros``: every stream leaves activation-0 neurons out (the baseline then costs
    per non-zero activation, like a sparse accelerator); ``use_dsp=False`` builds the
    multiplies from shifted adds (no DSP blocks).
    """

    PARTS = DENSE_COMPONENTS

    def __init__(self, net: Network, **options):
        super().__init__(net, **options)
        self.argmax = Argmax(classes=net.num_classes, bits=self.cores[-1].accumulator_bits)
