"""What the input quantization costs, and the fewest input bits that cost nothing measurable.

The input encoder rounds each feature to ``2**b − 1`` steps. Whether that loses anything is a
property of the *float* network and the data, not of the hidden layers: feed the float
network the encoder's decoded inputs (``offset + scale·a``) and count the calibration
samples whose class changes against the raw inputs. ``input_bits="auto"`` (the default of
``onespike convert``) takes the fewest bits from ``act_bits`` up to 8 whose count exceeds
that of 8 bits by at most :data:`TOLERANCE` of the samples (none), measured on
at most :data:`SAMPLES` of them with the two extreme encoder balances (per-feature and
shared steps), the worse one counting.
"""

from __future__ import annotations

import numpy as np

from onespike.mapper.quantize import _check_calibration, _encoder, _last_recurrent, \
    float_forward

__all__ = ["input_costs", "choose_input_bits", "TOLERANCE", "SAMPLES"]

#: share of the calibration samples whose class may change beyond 8 bits' and still count
#: as nothing measurable: none, since calibration samples are usually training samples,
#: farther from the float network's decision boundaries than unseen ones (on a synthetic
#: StandardScaler MLP, 2 changes in 2000 calibration samples at 5 bits were 19 more than
#: 8 bits' in 1000 held-out ones, and 0.7 points of accuracy)
TOLERANCE = 0.0
#: calibration samples measured at most
SAMPLES = 2000


def _decoded(encoder, x):
    """``offset + scale·a`` of the encoder's integers for ``x``: the input the integer
    network sees, in the model's units."""
    a = encoder.encode(x).astype(np.float64)
    lead = a.ndim - len(encoder.shape)
    shape = (1,) * lead + ((-1, 1, 1) if len(encoder.shape) == 3 else (-1,))
    return encoder.offset.reshape(shape) + encoder.scale.reshape(shape) * a


def input_costs(input_shape, layers, calib, bits):
    """Per input bit width in ``bits``, how many calibration samples change the float
    network's class when its inputs are encoded at that width (the worse of the balances)."""
    x = _check_calibration(calib, input_shape)[:SAMPLES]
    steps = input_shape[0] if _last_recurrent(layers) >= 0 else None
    frame = input_shape[1:] if steps else input_shape
    reference = np.argmax(float_forward(layers, x), axis=1)
    costs = {}
    for b in bits:
        changed = 0
        for balance in (0.0, 1.0):
            encoder = _encoder(x, frame, b, balance, steps)
            classes = np.argmax(float_forward(layers, _decoded(encoder, x)), axis=1)
            changed = max(changed, int(np.sum(classes != reference)))
        costs[b] = changed
    return costs, len(x)


def choose_input_bits(input_shape, layers, calib, act_bits, notes=None):
    """The fewest input bits from ``act_bits`` to 8 that cost nothing measurable; ``notes``
    (a list) receives what each width costs and which one was taken."""
    costs, samples = input_costs(input_shape, layers, calib, range(act_bits, 9))
    allowed = costs[8] + int(TOLERANCE * samples)
    bits = min(b for b, changed in costs.items() if changed <= allowed)
    if notes is not None:
        shown = ", ".join(f"{b} bits {costs[b] / samples:.1%}"
                          for b in sorted(costs) if b <= max(bits, act_bits + 1))
        notes.append(f"input bits {bits}: the float network's class changes on quantized "
                     f"inputs for {shown} of {samples} calibration samples (8 bits: "
                     f"{costs[8] / samples:.1%}); --input-bits N pins it")
    return bits
