"""Float layers + calibration data → integer TTFS :class:`~onespike.ir.Network`.

Layer by layer, in the integer domain of the layer's input (``x ≈ s_in·a + z``):

1. Fold the input scale, any average pooling (as sum pooling, ``1/(kh·kw)`` into the weights) and,
   for the first layer, the input offset (a bias, position-dependent where zero padding
   meets it) into effective float weights ``W'`` and bias ``b'``.
2. Pick per output channel the step ``s_out`` that minimises the squared error of the layer's ReLU
   output on the calibration data, whose inputs are the integer activations the already
   quantized layers produce (so errors do not compound unseen).
3. Per output channel, the weight step ``δ_i = s_out / R_i`` with the integer ramp
   ``R_i = floor(s_out / δ_min_i)``, where ``δ_min_i`` makes the largest weight fit
   ``weight_bits``; ``w = round(W'/δ_i)``, ``b = round(b'/δ_i) + floor(R_i/2)`` (the last term
   turns the contract's floor into rounding to nearest).
4. The readout shares one step for all classes, so the integer argmax is the float one.

A sequence model (a recurrent layer among the float layers; ``input_shape`` is ``(steps,
*frame)``) is quantized the same way, the layers up to the last recurrent one on every frame,
the ones after it on the last step. A recurrent layer's output step ``s_h`` is also the step
of its own state input, so its state weights ``W_h·s_h`` get the same per-row weight step
``δ_i = s_h_i / R_i`` as its input weights: ``h_t = clip(floor((w·a(x_t) + u·h_{t−1} +
b)/R), 0, A)`` with one integer ``R`` per neuron. ``s_h`` is fitted to the pre-activations
of all steps (the float recurrence on the quantized inputs) and raised where ``W_h·s_h``
would not fit the weight bits.

Per-channel output steps fit each channel's range, but the next layer folds them into its
weight columns, and at low weight bits one step per row then rounds the columns of small
channels to zero. So each hidden layer's steps are balanced between the per-channel best
``s_c`` and the best single step ``s_L`` of the layer: ``s = s_c^(1−α) · s_L^α``. The mapper
tries ``α`` in :data:`BALANCES` and keeps the network whose classes agree most often with the
float network's on the calibration data (ties: the smaller ``α``); ``balance=α`` fixes it.
"""

from __future__ import annotations

import numpy as np

from onespike.errors import OnespikeError
from onespike.ir import Conv, Dense, Encoder, MaxPool, Network, Recurrent, signal_shape

__all__ = ["quantize", "check_bits", "BALANCES", "float_forward"]

BALANCES = (0.0, 0.5, 1.0)



def check_bits(act_bits, weight_bits, input_bits=None):
    for name, bits in (("act_bits", act_bits), ("input_bits", input_bits)):
        if bits is None and name == "input_bits":
            continue
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) \
                or not 1 <= bits <= 8:
            raise OnespikeError(f"{name} must be an integer from 1 to 8, not {bits!r}")
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, (int, np.integer)) \
            or not 2 <= weight_bits <= 16:
        raise OnespikeError(f"weight_bits must be an integer from 2 to 16, not "
                            f"{weight_bits!r}")


def _check_calibration(calib, input_shape):
    calib = np.asarray(calib)
    if calib.dtype.kind not in "fiub":
        raise OnespikeError(f"calibration data must be numeric, not {calib.dtype}")
    calib = calib.astype(np.float64)
    frame = _step_frame(input_shape)
    if calib.shape[1:] == signal_shape(input_shape) or frame and calib.shape[1:] in (
            (input_shape[0],) + frame, (input_shape[0], int(np.prod(frame)))):
        # a 1-D signal; a sequence of maps, each step (C, L) or flat as the model reads it
        calib = calib.reshape((len(calib),) + tuple(input_shape))
    if calib.ndim != len(input_shape) + 1 or calib.shape[1:] != tuple(input_shape):
        what = " (samples, steps, features)" if _is_sequence_shape(input_shape) else ""
        if frame:
            what = (f" (samples, steps, *map), or (samples, {input_shape[0]}, "
                    f"{', '.join(map(str, frame))}) or (samples, {input_shape[0]}, "
                    f"{int(np.prod(frame))})")
        raise OnespikeError(f"calibration array has shape {calib.shape}; the model expects "
                            f"(samples, {', '.join(map(str, input_shape))}){what}")
    if len(calib) == 0:
        raise OnespikeError("calibration array holds no samples")
    if not np.all(np.isfinite(calib)):
        raise OnespikeError("calibration data contains NaN or infinite values")
    return calib


def _step_frame(input_shape):
    """Each step's map in a sequence of maps ``(steps, C, H, W)``, a signal as ``(C, L)``;
    None for other shapes."""
    if len(input_shape) != 4:
        return None
    return signal_shape(input_shape[1:]) or tuple(input_shape[1:])


def _is_sequence_shape(input_shape):
    return len(input_shape) in (2, 4)   # (steps, features) or (steps, C, H, W)


def _last_recurrent(layers):
    """Index of the last recurrent layer (the last per-step one), or −1."""
    return max((i for i, l in enumerate(layers) if l.kind == "recurrent"), default=-1)


def _encoder(calib, input_shape, act_bits, balance, steps=None):
    """Per-channel (images) or per-feature (vectors) offsets ``min(x, 0)``; scales balanced
    between each channel's own span and the widest one like the hidden layers' steps. A
    sequence's (``steps``) statistics are over all its frames."""
    if steps is not None:
        calib = calib.reshape((-1,) + tuple(input_shape))
    axes = (0, 2, 3) if len(input_shape) == 3 else 0
    lo = np.minimum(calib.min(axis=axes), 0.0)
    hi = np.maximum(calib.max(axis=axes), lo)
    levels = (1 << act_bits) - 1
    span = hi - lo
    widest = span.max() / levels if span.max() > 0 else 1.0
    own = np.where(span > 0, span / levels, widest)
    scale = own ** (1 - balance) * widest ** balance
    return Encoder(shape=input_shape, act_bits=act_bits, scale=np.atleast_1d(scale),
                   offset=np.atleast_1d(lo), steps=steps)


def _linear(layer, x, weight):
    """The float layer's linear map of ``x`` (batch, *in_shape) with ``weight``, no bias."""
    import torch
    import torch.nn.functional as F

    x = torch.tensor(np.asarray(x), dtype=torch.float64)
    if layer.pool != (1, 1):
        x = F.avg_pool2d(x, layer.pool) * _area(layer.pool)  # sum pooling
    w = torch.as_tensor(weight, dtype=torch.float64)
    if layer.kind != "conv":
        return F.linear(x.reshape(len(x), -1), w).numpy()
    return F.conv2d(x, w, stride=layer.stride, padding=layer.padding).numpy()


def _area(pool):
    return pool[0] * pool[1]


def _max_pool(layer, a):
    import torch
    import torch.nn.functional as F

    pooled = F.max_pool2d(torch.as_tensor(a, dtype=torch.float64), layer.kernel,
                          layer.stride, layer.padding)
    return pooled.numpy().astype(np.int64)


def _channel(values, kind):
    return values.reshape(-1, 1, 1) if kind == "conv" else values


def _with_bias(y, bias, kind):
    return y + (_channel(bias, kind) if bias.ndim == 1 else bias)


def _channel_map(values, shape):
    """Per-channel (or single) ``values`` broadcast over a map of ``shape``."""
    values = np.asarray(values, dtype=np.float64)
    if len(shape) == 1:
        return np.broadcast_to(values, shape)
    return np.broadcast_to(values.reshape(-1, 1, 1), shape)


def _effective(layer, in_scale, in_offset):
    """(W', b'): the layer on integer input activations, average pooling as sum pooling."""
    weight = layer.weight / _area(layer.pool)
    scale_map = _channel_map(in_scale, layer.in_shape)
    if layer.kind != "conv":
        if layer.pool != (1, 1):
            kh, kw = layer.pool
            scale_map = scale_map[:, :scale_map.shape[1] // kh * kh:kh,
                                  :scale_map.shape[2] // kw * kw:kw]
        weight_eff = weight * scale_map.reshape(-1)[None, :]
    else:
        weight_eff = weight * scale_map[:, 0, 0][None, :, None, None]
    bias = layer.bias.astype(np.float64)
    if np.any(np.asarray(in_offset) != 0):
        shift = _linear(layer, _channel_map(in_offset, layer.in_shape)[None], weight)[0]
        bias = (bias if bias.ndim > 1 else _channel(bias, layer.kind)) + shift
        if layer.kind == "conv" and np.all(bias == bias[:, :1, :1]):
            bias = bias[:, 0, 0]  # no padding reached the offset: per-channel bias
    return weight_eff, bias


def _best_step(pre, levels):
    """Output step minimising ``Σ (relu(u) - s·clip(round(relu(u)/s), 0, A))²``."""
    target = np.maximum(pre, 0.0)
    top = target.max(initial=0.0)
    if top <= 0:
        return 1.0
    target = target[target > 0]
    if target.size > 200_000:
        target = np.random.default_rng(0).choice(target, 200_000, replace=False)
    best, best_err = top / levels, np.inf
    for fraction in np.geomspace(0.2, 1.0, 48):
        step = top * fraction / levels
        err = np.sum((target - step * np.clip(np.floor(target / step + 0.5), 0, levels)) ** 2)
        if err < best_err:
            best, best_err = step, err
    return best


def _active_inputs(layer, inputs):
    """Which weights see a non-zero input on the calibration data (same shape as the
    weights): weights of inputs that never fire must not set the weight step (a batch norm
    folded after a dead ReLU or over a constant pixel scales them by ``1/sqrt(eps)``)."""
    a = np.asarray(inputs) != 0
    if layer.kind == "conv":
        return np.broadcast_to(a.any(axis=(0, 2, 3))[None, :, None, None],
                               layer.weight.shape)
    if layer.pool != (1, 1):
        kh, kw = layer.pool
        c, h, w = a.shape[1:]
        a = a[:, :, :h // kh * kh, :w // kw * kw].reshape(len(a), c, h // kh, kh, w // kw, kw)
        a = a.any(axis=(3, 5))
    return np.broadcast_to(a.reshape(len(a), -1).any(axis=0)[None, :], layer.weight.shape)


def _output_steps(layer, channels, levels, balance, min_step):
    """Per output channel the step ``s_out`` of the ReLU output, from its pre-activations
    ``channels`` (one row per channel), at least ``min_step``."""
    if layer.cap is not None:          # ReLU6, clamp(0, t): the top level sits at t
        return np.maximum(np.full(len(channels), layer.cap / levels), min_step)
    s_channel = np.array([_best_step(c, levels) for c in channels])
    s_layer = _best_step(channels.reshape(-1), levels)
    return np.maximum(s_channel ** (1 - balance) * s_layer ** balance, min_step)


def _ramps(s_out, min_step, weight_bits, levels):
    """``(R, δ)`` per channel: the integer ramp ``R = floor(s_out/δ_min)`` and the weight
    step ``δ = s_out/R``. Beyond ``2**(weight_bits + act_bits)`` a finer weight step no
    longer changes the output (rounding error far below one output step) but widens the
    membrane: the ramp is capped there. A ramp ``R < 1`` does not exist, so a channel whose
    weights need it gets a coarser step (``s_out ≥ δ_min``, see :func:`_output_steps`)."""
    ramp_cap = 1 << (weight_bits + (levels.bit_length()))
    with np.errstate(divide="ignore"):
        ramp = np.where(min_step > 0, np.floor(s_out / np.maximum(min_step, 1e-300)), ramp_cap)
    ramp = np.clip(ramp, 1, ramp_cap).astype(np.int64)
    return ramp, s_out / ramp


def _integers(values, steps, qmax):
    """``values`` in units of the per-row ``steps``, rounded and clipped to ``±qmax``."""
    steps = steps.reshape((-1,) + (1,) * (values.ndim - 1))
    return np.clip(np.round(values / steps), -qmax, qmax).astype(np.int64)


def _row_max(layer, weight_eff, inputs):
    """Per output row the largest ``|W'|`` over the inputs that fire on the calibration
    data."""
    active = _active_inputs(layer, inputs)
    if not active.any():
        active = np.ones_like(active)
    return np.where(active, np.abs(weight_eff), 0).reshape(len(weight_eff), -1).max(axis=1)


def _quantize_layer(layer, weight_eff, bias_eff, inputs, levels, weight_bits, balance):
    qmax = (1 << (weight_bits - 1)) - 1
    rows = _row_max(layer, weight_eff, inputs)
    if levels is None:  # readout: one step for every class
        step = rows.max() / qmax if rows.max() > 0 else 1.0
        weight = np.clip(np.round(weight_eff / step), -qmax, qmax).astype(np.int64)
        return (weight, np.round(bias_eff / step).astype(np.int64), None,
                np.full(len(weight), step))
    pre = _with_bias(_linear(layer, inputs, weight_eff), bias_eff, layer.kind)
    channels = np.moveaxis(pre, 1, 0).reshape(len(weight_eff), -1)
    min_step = rows / qmax
    # One output step per channel (the next layer folds it into its weights).
    s_out = _output_steps(layer, channels, levels, balance, min_step)
    ramp, steps = _ramps(s_out, min_step, weight_bits, levels)
    weight = _integers(weight_eff, steps, qmax)
    per_bias = _channel(steps, layer.kind) if bias_eff.ndim > 1 else steps
    bias = np.round(bias_eff / per_bias).astype(np.int64)
    bias = bias + (_channel(ramp // 2, layer.kind) if bias.ndim > 1 else ramp // 2)
    return weight, bias, ramp, s_out


def _recurrence(drive, recurrent, cap):
    """The float ReLU recurrence ``h_t = relu(drive_t + recurrent·h_{t−1})``, ``h_{−1} = 0``,
    over ``drive`` (batch, steps, outputs): ``(states, pre-activations)``, both that shape."""
    h = np.zeros((len(drive), drive.shape[2]))
    states, pre = np.zeros_like(drive), np.zeros_like(drive)
    for t in range(drive.shape[1]):
        pre[:, t] = drive[:, t] + h @ recurrent.T
        h = states[:, t] = np.clip(pre[:, t], 0.0, np.inf if cap is None else cap)
    return states, pre


def _quantize_recurrent(layer, acts, in_scale, in_offset, act_bits, weight_bits, balance):
    """``(Recurrent, its integer states (batch, steps, outputs), output steps s_h)`` of a
    float recurrent layer fed by the integer ``acts`` (batch, steps, *in_shape)."""
    levels, qmax = (1 << act_bits) - 1, (1 << (weight_bits - 1)) - 1
    weight_eff, bias_eff = _effective(layer, in_scale, in_offset)
    batch, steps = acts.shape[:2]
    frames = acts.reshape(batch * steps, -1)
    drive = (frames @ weight_eff.T + bias_eff).reshape(batch, steps, -1)
    pre = _recurrence(drive, layer.recurrent, layer.cap)[1]
    rows = _row_max(layer, weight_eff, frames)
    s_out = _output_steps(layer, pre.reshape(-1, pre.shape[2]).T, levels, balance,
                          rows / qmax)
    # the state weights W_h·s_h share the row's step: raise s_h until they fit (a state
    # that never fires on the calibration data, whose s_h is arbitrary, does not count)
    fires = (pre > 0).reshape(-1, pre.shape[2]).any(axis=0)
    for _ in range(16):
        state_rows = np.abs(layer.recurrent * np.where(fires, s_out, 0)[None, :]).max(axis=1)
        min_step = np.maximum(rows, state_rows) / qmax
        if np.all(min_step <= s_out):
            break
        s_out = np.maximum(s_out, min_step)
    ramp, weight_steps = _ramps(s_out, min_step, weight_bits, levels)
    weight = _integers(weight_eff, weight_steps, qmax)
    recurrent = _integers(layer.recurrent * s_out[None, :], weight_steps, qmax)
    bias = np.round(bias_eff / weight_steps).astype(np.int64) + ramp // 2
    ir = Recurrent(in_shape=layer.in_shape, weight=weight, recurrent=recurrent, bias=bias,
                   ramp=ramp, act_bits=act_bits, scale=s_out)
    inputs = (frames @ weight.T).reshape(batch, steps, -1) + bias
    h, states = np.zeros((batch, len(weight)), np.int64), []
    for t in range(steps):             # the contract's update, in exact integers
        h = np.clip(np.floor_divide(inputs[:, t] + h @ recurrent.T, ramp), 0, levels)
        states.append(h)
    return ir, np.stack(states, axis=1), s_out


def _float_layer(layer, x):
    import torch
    import torch.nn.functional as F

    if layer.kind == "maxpool":
        return F.max_pool2d(torch.as_tensor(x), layer.kernel, layer.stride,
                            layer.padding).numpy()
    # _linear sum-pools; the float layer average-pools
    x = _with_bias(_linear(layer, x, layer.weight / _area(layer.pool)), layer.bias,
                   layer.kind)
    if layer.relu:
        x = np.clip(x, 0.0, np.inf if layer.cap is None else layer.cap)
    return x


def _per_step(function, x):
    """``function`` of a batch applied to every frame of ``x`` (batch, steps, ...)."""
    out = function(x.reshape((-1,) + x.shape[2:]))
    return out.reshape(x.shape[:2] + out.shape[1:])


def float_forward(layers, x):
    """The float network's logits on ``x`` (batch, *input_shape); a sequence model's
    ``x`` is (batch, steps, *frame)."""
    x = np.asarray(x, dtype=np.float64)
    last = _last_recurrent(layers)
    for index, layer in enumerate(layers):
        if layer.kind == "recurrent":
            drive = _per_step(lambda f: f.reshape(len(f), -1) @ layer.weight.T + layer.bias, x)
            x = _recurrence(drive, layer.recurrent, layer.cap)[0]
        elif index < last:
            x = _per_step(lambda f: _float_layer(layer, f), x)
        else:
            x = _float_layer(layer, x)
        if index == last:
            x = x[:, -1]
    return x


def quantize(input_shape, layers, calib, *, act_bits=4, weight_bits=8, balance=None,
             input_bits=None, notes=None) -> Network:
    """Integer network from parsed float ``layers`` and a calibration array; ``balance``
    (``α`` in ``[0, 1]``, see the module notes) is chosen on the calibration data when
    None; ``input_bits`` (default ``act_bits``) is the encoder's. ``notes``, a list when
    given, receives what the conversion costs on the calibration data (:func:`_costs`)."""
    check_bits(act_bits, weight_bits, input_bits)
    input_bits = act_bits if input_bits is None else input_bits
    given = np.shape(calib)[1:]
    calib = _check_calibration(calib, input_shape)
    frame = _step_frame(input_shape)
    if notes is not None and frame and given[1:] not in (frame, tuple(input_shape[1:])):
        notes.append(f"the network takes each step as the {frame} map its first "
                     f"convolution reads: feed it x.reshape(len(x), {input_shape[0]}, "
                     f"{', '.join(map(str, frame))})")
    if balance is not None and not 0 <= balance <= 1:
        raise OnespikeError(f"balance must be in [0, 1], not {balance}")
    if balance is not None and notes is None:
        return _quantize(input_shape, layers, calib, act_bits, weight_bits, balance,
                         input_bits)[0]
    reference = np.argmax(float_forward(layers, calib), axis=1)
    best = None
    for alpha in BALANCES if balance is None else (balance,):
        net, logits = _quantize(input_shape, layers, calib, act_bits, weight_bits, alpha,
                                input_bits)
        agree = int(np.sum(np.argmax(logits, axis=1) == reference))
        if best is None or agree > best[0]:
            best = (agree, net, alpha)
        if sum(1 for l in layers if l.kind != "maxpool") < 3 and alpha == 0 \
                and agree == len(calib):
            break
    if notes is not None:
        bits = {"act_bits": act_bits, "weight_bits": weight_bits, "input_bits": input_bits}
        notes.extend(_costs(input_shape, layers, calib, reference, best, bits))
    return best[1]


#: the finest value of each setting, tried when the integer network loses more than a point
FINEST = {"weight_bits": 16, "act_bits": 8, "input_bits": 8}


def _costs(input_shape, layers, calib, reference, best, bits):
    """One line on how often the integer network's classes agree with the float network's
    on the calibration data; when they differ on more than 1 % of it, a warning that names
    the setting whose finest value wins most back (each tried alone)."""
    agree, _, alpha = best
    share = agree / len(calib)
    lines = [f"the integer network's classes agree with the float network's on "
             f"{share:.1%} of the {len(calib)} calibration samples"]
    if share >= 0.99:
        return lines
    trials = {}
    for name, finest in FINEST.items():
        if bits[name] < finest:
            trial = dict(bits, **{name: finest})
            _, logits = _quantize(input_shape, layers, calib, trial["act_bits"],
                                  trial["weight_bits"], alpha, trial["input_bits"])
            trials[name] = np.mean(np.argmax(logits, axis=1) == reference)
    if trials:
        name = max(trials, key=trials.get)
        lines.append(f"warning: {1 - share:.1%} of the calibration samples change class; "
                     f"{name} {bits[name]} costs most (at {FINEST[name]}: {trials[name]:.1%} "
                     f"agree): raise --{name.replace('_', '-')}")
    return lines


def _quantize(input_shape, layers, calib, act_bits, weight_bits, balance, input_bits):
    """(network, its integer logits on the calibration data)."""
    last = _last_recurrent(layers)
    steps = input_shape[0] if last >= 0 else None
    encoder = _encoder(calib, input_shape[1:] if steps else input_shape, input_bits,
                       balance, steps)
    in_scale, in_offset = encoder.scale, encoder.offset
    acts = encoder.encode(calib)
    ir_layers = []
    for index, layer in enumerate(layers):
        if layer.kind == "recurrent":
            ir, acts, in_scale = _quantize_recurrent(layer, acts, in_scale, in_offset,
                                                     act_bits, weight_bits, balance)
        else:
            per_step = index < last        # a frame at a time: (batch·steps, *shape)
            flat = acts.reshape((-1,) + acts.shape[2:]) if per_step else acts
            ir, out, in_scale = _quantize_feedforward(
                layer, flat, in_scale, in_offset, index == len(layers) - 1, act_bits,
                weight_bits, balance)
            acts = out.reshape(acts.shape[:2] + out.shape[1:]) if per_step else out
        ir_layers.append(ir)
        if layer.kind != "maxpool":
            in_offset = np.zeros(1)
        if index == last:
            acts = acts[:, -1]
    return Network(encoder, tuple(ir_layers)), acts


def _quantize_feedforward(layer, acts, in_scale, in_offset, readout, act_bits, weight_bits,
                          balance):
    """``(IR layer, its integer outputs (the logits of a readout), its output scale)``."""
    if layer.kind == "maxpool":
        ir = MaxPool(in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride,
                     padding=layer.padding)
        return ir, _max_pool(layer, acts), in_scale
    weight_eff, bias_eff = _effective(layer, in_scale, in_offset)
    weight, bias, ramp, scale = _quantize_layer(
        layer, weight_eff, bias_eff, acts, None if readout else (1 << act_bits) - 1,
        weight_bits, balance)
    common = dict(in_shape=layer.in_shape, weight=weight, bias=bias, ramp=ramp,
                  act_bits=None if readout else act_bits, scale=scale, pool=layer.pool)
    ir = Dense(**common) if layer.kind == "dense" else \
        Conv(**common, stride=layer.stride, padding=layer.padding)
    y = _with_bias(_linear(layer, acts, weight), bias, layer.kind)
    if readout:
        return ir, y.reshape(len(y), -1), scale
    # Exact: every |value| is below the layer's membrane bound, far under 2**53.
    acts = np.clip(np.floor_divide(np.rint(y).astype(np.int64),
                                   _channel(ramp, layer.kind)), 0, ir.levels)
    return ir, acts, scale
