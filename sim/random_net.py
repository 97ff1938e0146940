"""Random integer networks for fuzzing the golden model and the hardware against each other."""

from __future__ import annotations

import numpy as np

from onespike.ir import Conv, Dense, Encoder, MaxPool, Network, Recurrent

__all__ = ["random_network", "random_recurrent_network", "random_inputs"]


def _weights(rng, shape, bits):
    qmax = (1 << (bits - 1)) - 1
    return rng.integers(-qmax, qmax + 1, size=shape)


def _pool_axis(rng, size):
    """A pooling window on an axis of ``size``: 2..3 where it fits, else 1 (and sometimes 1
    anyway, for rectangular windows)."""
    return int(rng.integers(2, min(3, size) + 1)) if size >= 2 and rng.random() < 0.8 else 1


def _conv_axis(rng, size):
    """``(kernel, padding, stride)`` of a convolution on an axis of ``size`` (mostly a
    kernel of 1 on the height of a signal, as a 1-D convolution has)."""
    if size == 1 and rng.random() < 0.7:
        return 1, 0, 1
    k = int(rng.integers(1, min(5, size + 2) + 1))
    padding = int(rng.integers(0, min(2, k - 1) + 1))
    while size + 2 * padding < k:
        k -= 1
        padding = min(padding, k - 1)
    return k, padding, int(rng.integers(1, 3))


def random_network(rng, *, conv=True, max_layers=4, act_bits=None, weight_bits=None,
                   max_width=12) -> Network:
    """A random valid network: vector, signal (height 1) or image input, dense/conv/max-pool/
    sum-pool layers with their own height and width geometry, per-layer activation bits
    1..8, weight bits 2..8, negative weights and biases, and biases large enough to saturate
    neurons at both ends."""
    def bits():
        return int(act_bits or rng.integers(1, 9))

    image = conv and rng.random() < 0.7
    if image:
        signal = rng.random() < 0.25
        shape = (int(rng.integers(1, 4)), 1 if signal else int(rng.integers(3, 10)),
                 int(rng.integers(3, 10)))
    else:
        shape = (int(rng.integers(1, max_width + 1)),)
    encoder = Encoder(shape=shape, act_bits=bits(), scale=np.ones(shape[0] if image else 1),
                      offset=np.zeros(shape[0] if image else 1))
    layers, levels = [], encoder.levels
    count = int(rng.integers(1, max_layers + 1))
    for i in range(count):
        readout = i == count - 1
        wb = int(weight_bits or rng.integers(2, 9))
        a_bits = None if readout else bits()
        if len(shape) == 3 and not readout and rng.random() < 0.25 and max(shape[1:]) >= 2:
            kernel = tuple(_pool_axis(rng, n) for n in shape[1:])
            layer = MaxPool(in_shape=shape, kernel=kernel,
                            stride=tuple(int(rng.integers(1, k + 1)) for k in kernel),
                            padding=tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel))
            layers.append(layer)
            shape = layer.out_shape
            continue
        pool = (1, 1)
        if len(shape) == 3 and rng.random() < 0.25 and max(shape[1:]) >= 2:
            pool = tuple(_pool_axis(rng, n) for n in shape[1:])
        pooled = shape if len(shape) == 1 else \
            (shape[0], shape[1] // pool[0], shape[2] // pool[1])
        use_conv = len(shape) == 3 and (not readout or rng.random() < 0.3) \
            and rng.random() < 0.75
        if use_conv:
            (kh, ph, sh), (kw, pw, sw) = (_conv_axis(rng, n) for n in pooled[1:])
            outputs = int(rng.integers(1, 6))
            weight = _weights(rng, (outputs, pooled[0], kh, kw), wb)
        else:
            outputs = int(rng.integers(1, max_width + 1))
            weight = _weights(rng, (outputs, int(np.prod(pooled))), wb)
        fan = np.abs(weight).reshape(outputs, -1).sum(1).max() * levels * pool[0] * pool[1]
        ramp = None if readout else rng.integers(1, max(2, fan // max(1, 2 ** a_bits)) + 2,
                                                 size=outputs)
        span = int(fan) + 1
        common = dict(in_shape=shape, weight=weight, ramp=ramp, act_bits=a_bits, scale=1.0,
                      pool=pool)
        if use_conv:
            geometry = dict(stride=(sh, sw), padding=(ph, pw))
            probe = Conv(**common, bias=np.zeros(outputs, np.int64), **geometry)
            bshape = probe.out_shape if (i == 0 and rng.random() < 0.3) else (outputs,)
            layer = Conv(**common, bias=rng.integers(-span, span // 2 + 1, size=bshape),
                         **geometry)
        else:
            layer = Dense(**common, bias=rng.integers(-span, span // 2 + 1, size=outputs))
        layers.append(layer)
        shape = layer.out_shape
        levels = layer.levels
    return Network(encoder, tuple(layers))


def _ramp(rng, fan, act_bits, outputs):
    return rng.integers(1, max(2, fan // max(1, 2 ** act_bits)) + 2, size=outputs)


def random_recurrent_network(rng, *, max_steps=30, max_recurrent=2, act_bits=None,
                             weight_bits=None, max_width=10, signal=None) -> Network:
    """A random valid sequence network: an optional per-step Dense (or, on a signal frame,
    a Conv) before 1..``max_recurrent`` ReLU recurrent layers, an optional Dense after the
    last one, a Dense readout; ``1..max_steps`` steps, activation bits 1..8 per layer
    (``A_x ≠ A_h`` included), negative weights, biases that saturate at both ends."""
    def bits():
        return int(act_bits or rng.integers(1, 9))

    def wbits():
        return int(weight_bits or rng.integers(2, 9))

    signal = rng.random() < 0.2 if signal is None else signal
    shape = (int(rng.integers(1, 3)), 1, int(rng.integers(3, 8))) if signal \
        else (int(rng.integers(1, max_width + 1)),)
    channels = shape[0] if signal else 1
    encoder = Encoder(shape=shape, act_bits=bits(), scale=np.ones(channels),
                      offset=np.zeros(channels), steps=int(rng.integers(1, max_steps + 1)))
    layers, levels = [], encoder.levels
    kinds = (["conv"] if signal else ["dense"] * int(rng.random() < 0.3)) \
        + ["recurrent"] * int(rng.integers(1, max_recurrent + 1)) \
        + ["dense"] * int(rng.random() < 0.3) + ["readout"]
    for kind in kinds:
        a_bits = None if kind == "readout" else bits()
        outputs = int(rng.integers(1, max_width + 1))
        if kind == "conv":
            kernel = int(rng.integers(1, shape[2] + 1))
            weight = _weights(rng, (int(rng.integers(1, 4)), shape[0], 1, kernel), wbits())
        else:
            weight = _weights(rng, (outputs, int(np.prod(shape))), wbits())
        outputs = weight.shape[0]
        fan = np.abs(weight).reshape(outputs, -1).sum(1).max() * levels
        common = dict(in_shape=shape, weight=weight, act_bits=a_bits, scale=1.0,
                      ramp=None if kind == "readout" else _ramp(rng, fan, a_bits, outputs))
        if kind == "recurrent":
            recurrent = _weights(rng, (outputs, outputs), wbits())
            fan += np.abs(recurrent).sum(1).max() * ((1 << a_bits) - 1)
            common["ramp"] = _ramp(rng, fan, a_bits, outputs)
            layer = Recurrent(**common, recurrent=recurrent,
                              bias=rng.integers(-fan - 1, fan // 2 + 2, size=outputs))
        elif kind == "conv":
            layer = Conv(**common, bias=rng.integers(-fan - 1, fan // 2 + 2, size=outputs))
        else:
            layer = Dense(**common, bias=rng.integers(-fan - 1, fan // 2 + 2, size=outputs))
        layers.append(layer)
        shape, levels = layer.out_shape, layer.levels
    return Network(encoder, tuple(layers))


def random_inputs(rng, net: Network, samples: int) -> np.ndarray:
    """Integer input activations with zeros and saturated values over-represented
    (``(samples, steps, *shape)`` for a sequence network)."""
    levels = net.encoder.levels
    a = rng.integers(0, levels + 1, size=(samples,) + net.encoder.sample_shape)
    corner = rng.random(a.shape)
    a[corner < 0.2] = 0
    a[corner > 0.85] = levels
    return a
