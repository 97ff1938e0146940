"""The dense baseline accelerator: the same integer network and ports as
:class:`~onespike.hdl.top.Accelerator`, computed by multiply-accumulate over activation
streams instead of spikes (``--coding dense``)."""

from onespike.errors import OnespikeError
from onespike.hdl.argmax import Argmax
from onespike.hdl.encoder import flag
from onespike.hdl.mac import ActivationMaxPool, ActivationSource, MacCore
from onespike.hdl.streams import refuse
from onespike.hdl.top import LayerPipeline
from onespike.ir import MaxPool, Network

__all__ = ["DenseAccelerator"]


class DenseAccelerator(LayerPipeline):
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

    def __init__(self, net: Network, *, lanes=1, skip_zeros=True, use_dsp=True):
        if net.steps is not None:
            refuse(self, OnespikeError(
                "the dense coding has no recurrent core: build this sequence network with "
                "--coding ttfs (the default)"))
        self._take(net, lanes, use_dsp)
        try:
            self._skip_zeros = flag(skip_zeros, "skip_zeros")
        except TypeError as e:
            refuse(self, e)
        self.encoder = ActivationSource(shape=net.encoder.shape, levels=net.encoder.levels,
                                        skip_zeros=skip_zeros)
        self.cores = []
        for i, layer in enumerate(net.layers):
            if isinstance(layer, MaxPool):
                self.cores.append(ActivationMaxPool(layer, levels=net.in_levels(i),
                                                    skip_zeros=skip_zeros))
            else:
                self.cores.append(MacCore(layer, in_levels=net.in_levels(i),
                                          lanes=self._lanes[i], skip_zeros=skip_zeros,
                                          use_dsp=use_dsp))
        self.argmax = Argmax(classes=net.num_classes, bits=self.cores[-1].accumulator_bits)
        self._chain()

    coding = "dense"


    @property
    def skip_zeros(self):
        return self._skip_zeros
