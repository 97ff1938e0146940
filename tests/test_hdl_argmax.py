"""The argmax alone in the Amaranth simulator: the golden logits of random readouts, then
rows at the ends of the logit range and with ties, in; the golden classes out."""

import numpy as np
import pytest

from onespike.hdl.argmax import Argmax
from onespike.ir import Dense
from onespike.sim import closed_form

from helpers import FLOWS, check_argmax, networks_with

READOUTS = networks_with(3, conv=True, where=lambda layer: isinstance(layer, Dense)
                         and layer.is_readout and layer.weight.shape[0] >= 3)


def logit_bits(net):
    return net.widths()[-1].membrane_bits


def logit_rows(number):
    """The golden logits of readout ``number``, then rows that reach both ends of the
    logit width and rows with ties (which go to the lowest class)."""
    net, _, a0 = READOUTS[number]
    classes, bits = net.num_classes, logit_bits(net)
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    edges = np.full((5, classes), low)
    edges[0, -1] = high                     # the largest value wins
    edges[1, :] = high                      # all tied: class 0
    edges[2, 1:] = 0                        # the smallest value loses
    edges[2, 0] = high
    edges[3, 1] = -1                        # just above the smallest
    edges[4, [1, 2]] = 0                    # a tie between two later classes
    return np.concatenate([closed_form(net, a0).logits, edges])


class NarrowArgmax(Argmax):
    """Planted fault: the running maximum is one bit narrower than the logits."""

    def __init__(self, *, classes, bits):
        super().__init__(classes=classes, bits=bits)
        self._bits = bits - 1


def test_the_rows_reach_the_ends_of_the_range():
    for number, (net, _, _) in enumerate(READOUTS):
        rows, bits = logit_rows(number), logit_bits(net)
        assert rows.min() == -(1 << (bits - 1)) and rows.max() == (1 << (bits - 1)) - 1


@pytest.mark.parametrize("idle, backpressure", FLOWS)
@pytest.mark.parametrize("number", range(len(READOUTS)))
def test_argmax_against_golden(number, idle, backpressure):
    net, _, _ = READOUTS[number]
    argmax = Argmax(classes=net.num_classes, bits=logit_bits(net))
    mismatch = check_argmax(argmax, logit_rows(number), idle=idle, backpressure=backpressure,
                            seed=number)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("core", [Argmax, NarrowArgmax])
def test_a_planted_fault_is_caught(core):
    net, _, _ = READOUTS[0]
    mismatch = check_argmax(core(classes=net.num_classes, bits=logit_bits(net)),
                            logit_rows(0), idle=0.3, backpressure=0.5)
    assert (mismatch is not None) == (core is NarrowArgmax), mismatch
