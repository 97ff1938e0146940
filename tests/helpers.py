"""Helpers shared by several test modules (no test module imports another)."""

import numpy as np

from onespike.ir import Conv, MaxPool
from onespike.sim import random_network

# -- networks --


def conv_networks(count, start=0):
    """``count`` random image networks that convolve or max-pool (dense readout), with a spread of
    kernels 1-5, strides 1-2, padding 0-2, sum pooling into the layer and odd sizes."""
    found, seed = [], start
    while len(found) < count:
        rng = np.random.default_rng(seed)
        net = random_network(rng, conv=True, act_bits=int(rng.integers(1, 4)))
        seed += 1
        if isinstance(net.layers[-1], Conv) or \
                not any(isinstance(l, (Conv, MaxPool)) for l in net.layers):
            continue
        found.append(net)
    return found


CONV_NETS = conv_networks(13)


def conv_net_and_rng(number):
    """Random conv network ``number`` and a generator of its own, so inputs do not depend on
    which tests ran before."""
    return CONV_NETS[number], np.random.default_rng(1000 + number)
