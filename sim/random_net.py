"""Random integer networks for fuzzing the golden model and the hardware against each other."""

from __future__ import annotations

import numpy as np

from onespike.ir import Conv, Dense, Encoder, MaxPool, Network

__all__ = ["random_network", "random_inputs"]


def _weights(rng, shape, bits):
    qmax = (1 << (bits - 1)) - 1
    return rng.integers(-qmax, qmax + 1, size=shape)


def random_network(rng, *, conv=True, max_layers=4, act_bits=None, weight_bits=None,
                   max_width=12) -> Network:
    """A random valid network: vector or image input, dense/conv/max-pool/sum-pool layers,
    per-layer activation bits 1..8, weight bits 2..8, negative weights and biases, and
    biases large enough to saturate neurons at both ends."""
    def bits():
        return int(act_bits or rng.integers(1, 9))

    image = conv and rng.random() < 0.7
    shape = (int(rng.integers(1, 4)), int(rng.integers(3, 10)), int(rng.integers(3, 10))) \
        if image else (int(rng.integers(1, max_width + 1)),)
    encoder = Encoder(shape=shape, act_bits=bits(), scale=np.ones(shape[0] if image else 1),
                      offset=np.zeros(shape[0] if image else 1))
    layers, levels = [], encoder.levels
    count = int(rng.integers(1, max_layers + 1))
    for i in range(count):
        readout = i == count - 1
        wb = int(weight_bits or rng.integers(2, 9))
        a_bits = None if readout else bits()
        if len(shape) == 3 and not readout and rng.random() < 0.25 and min(shape[1:]) >= 2:
            k = int(rng.integers(2, min(3, min(shape[1:])) + 1))
            layer = MaxPool(in_shape=shape, kernel=k, stride=int(rng.integers(1, k + 1)),
                            padding=int(rng.integers(0, k // 2 + 1)))
            layers.append(layer)
            shape = layer.out_shape
            continue
        pool = 1
        if len(shape) == 3 and rng.random() < 0.25 and min(shape[1:]) >= 2:
            pool = int(rng.integers(2, min(3, min(shape[1:])) + 1))
        pooled = shape if pool == 1 else (shape[0], shape[1] // pool, shape[2] // pool)
        use_conv = len(shape) == 3 and (not readout or rng.random() < 0.3) \
            and rng.random() < 0.75
        if use_conv:
            k = int(rng.integers(1, min(5, max(pooled[1:]) + 2) + 1))
            padding = int(rng.integers(0, min(2, k - 1) + 1))
            while min(pooled[1:]) + 2 * padding < k:
                k -= 1
                padding = min(padding, k - 1)
            outputs = int(rng.integers(1, 6))
            weight = _weights(rng, (outputs, pooled[0], k, k), wb)
        else:
            outputs = int(rng.integers(1, max_width + 1))
            weight = _weights(rng, (outputs, int(np.prod(pooled))), wb)
        fan = np.abs(weight).reshape(outputs, -1).sum(1).max() * levels * pool ** 2
        ramp = None if readout else rng.integers(1, max(2, fan // max(1, 2 ** a_bits)) + 2,
                                                 size=outputs)
        span = int(fan) + 1
        common = dict(in_shape=shape, weight=weight, ramp=ramp, act_bits=a_bits, scale=1.0,
                      pool=pool)
        if use_conv:
            stride = int(rng.integers(1, 3))
            probe = Conv(**common, bias=np.zeros(outputs, np.int64), stride=stride,
                         padding=padding)
            bshape = probe.out_shape if (i == 0 and rng.random() < 0.3) else (outputs,)
            layer = Conv(**common, bias=rng.integers(-span, span // 2 + 1, size=bshape),
                         stride=stride, padding=padding)
        else:
            layer = Dense(**common, bias=rng.integers(-span, span // 2 + 1, size=outputs))
        layers.append(layer)
        shape = layer.out_shape
        levels = layer.levels
    return Network(encoder, tuple(layers))


def random_inputs(rng, net: Network, samples: int) -> np.ndarray:
    """Integer input activations with zeros and saturated values over-represented."""
    levels = net.encoder.levels
    a = rng.integers(0, levels + 1, size=(samples,) + net.encoder.shape)
    corner = rng.random(a.shape)
    a[corner < 0.2] = 0
    a[corner > 0.85] = levels
    return a
