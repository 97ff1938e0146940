"""Quantization-aware fine-tuning: train the converted integer network itself.

:func:`finetune` converts a float model with the mapper (or takes a converted
:class:`~onespike.ir.Network`) and trains the result as a :class:`TunedNetwork`, a torch
module whose forward pass *is* the integer network of the golden model's ``closed_form``:
the mapper's encoder, integer weights ``round(θ)`` clipped to ``weight_bits``, integer
biases, sum pooling, max pooling and ``a = clip(floor(y / R), 0, A)``, evaluated exactly
(integers in float64 and int64). Gradients pass the rounding and the floor straight through
(``∂a/∂y = 1/R`` inside the window, 0 where the activation is clipped). Converting the
result (:meth:`TunedNetwork.network`, or ``onespike.convert(tuned, calib)``) loses nothing:
the network that runs is the network that was trained.

Scales and ramps: the mapper calibrates them once, on the float model and the training
data, and they stay fixed. Within a channel, ``R`` and the integer weights only matter
through their ratio, so learning the weights (and biases, in units of ``R``) covers what
learning ``R`` would, and a fixed ``R`` keeps the threshold ramp, the register widths and
the hardware's window unchanged while training.

The spike penalty (``spike_weight``) adds the mean activation of the hidden neurons, as a
fraction of their window, to the loss: an L1 term whose gradient reaches every neuron that
fires, so activations shrink and small ones fall to 0, which sends no spike. The epoch kept
is the one with the lowest held-out objective (cross-entropy plus the penalty: smoother
than the held-out accuracy on small sets), the plain conversion (epoch 0) included.
"""

from __future__ import annotations

import numpy as np

from onespike.errors import OnespikeError
from onespike.ir import Network, signed_bits

__all__ = ["finetune"]


def _labels(y, samples, classes):
    import torch

    y = np.asarray(y)
    if y.shape != (samples,) or y.dtype.kind not in "iu":
        raise OnespikeError(f"labels must be {samples} integers (one per sample), not "
                            f"{y.dtype} {y.shape}")
    if samples and (y.min() < 0 or y.max() >= classes):
        raise OnespikeError(f"labels must lie in 0..{classes - 1} (the network has "
                            f"{classes} classes)")
    return torch.as_tensor(y, dtype=torch.long)


def _default_lr(samples, batch):
    """Adam's step is about ``lr`` per update whatever the gradient, so the default gives an
    epoch about a tenth of the weight range in all (``0.1 / steps``, within 2e-4..5e-3):
    few steps on a small set move far enough, many on a large one do not shake the integer
    weights off the network the conversion found. Where the conversion loses much, a larger
    rate pays: the 1-bit MNIST CNN (60,000 images, 20 epochs) reached 97.1 % at the default
    2e-4 and 98.1 % at ``lr=1e-3`` (float 99.1 %), while the MNIST MLP did better at the
    default (1 bit: 97.4 % against 96.9 %)."""
    steps = max(1, -(-samples // batch))
    return min(5e-3, max(2e-4, 0.1 / steps))


def _objective(logits, hidden, labels, readout_step, spike_weight):
    """Cross-entropy of the float-scaled integer logits, plus the spike penalty."""
    import torch
    import torch.nn.functional as F

    loss = F.cross_entropy(logits * readout_step, labels)
    if spike_weight and hidden:
        loss = loss + spike_weight * torch.cat([h.flatten(1) for h in hidden], 1).mean()
    return loss


def _score(tuned, a0, y, readout_step, spike_weight):
    """Held-out ``(accuracy, spiking fraction of hidden neurons, objective)``, exact."""
    import torch

    with torch.no_grad():
        logits, hidden = tuned.integer_forward(a0)
        objective = float(_objective(logits, hidden, y, readout_step, spike_weight))
    accuracy = float((logits.argmax(1) == y).double().mean())
    neurons = sum(h[0].numel() for h in hidden)
    fraction = float(sum((h > 0).sum() for h in hidden)) / (neurons * len(a0)) \
        if hidden else 0.0
    return accuracy, fraction, objective


def finetune(model, x, y, *, act_bits=4, weight_bits=None, input_bits=None, epochs=10, lr=None,
             batch=64, spike_weight=0.0, held_out=0.1, keep="best", seed=0, progress=True) \
        -> "TunedNetwork":
    """Fine-tune ``model`` (a float ``torch.nn.Module``, converted here with ``x`` as the
    calibration data, or a converted :class:`~onespike.ir.Network`) on inputs ``x`` and
    integer labels ``y`` as the exact integer network; see the module notes.
    ``weight_bits``: 8 for a float model, a converted network's own by default. A share
    ``held_out`` of the samples (drawn with ``seed``) scores each epoch and is not trained
    on. Returns the :class:`TunedNetwork` of the best epoch (``keep="last"``: of the last),
    ``history`` filled."""
    import torch
    from tqdm import tqdm

    from onespike.mapper import convert
    from onespike.mapper.tuned import TunedNetwork

    if epochs < 0 or batch < 1 or not 0 <= held_out < 1 or spike_weight < 0 or \
            (lr is not None and lr <= 0):
        raise OnespikeError("epochs must be ≥ 0, batch ≥ 1, held_out in [0, 1), "
                            "spike_weight ≥ 0 and lr > 0")
    if keep not in ("best", "last"):
        raise OnespikeError(f"keep must be 'best' or 'last', not {keep!r}")
    if not isinstance(model, Network):
        weight_bits = weight_bits or 8
        model = convert(model, x, act_bits=act_bits, weight_bits=weight_bits,
                        input_bits=input_bits)
    elif weight_bits is None:              # a converted network keeps its own weight bits
        weight_bits = max(2, max(signed_bits(int(np.abs(layer.weight).max(initial=0)))
                                 for layer in model.layers if hasattr(layer, "weight")))
    tuned = TunedNetwork(model, weight_bits)
    a0 = tuned.encode(x)
    labels = _labels(y, len(a0), model.num_classes)
    order = torch.as_tensor(np.random.default_rng(seed).permutation(len(a0)))
    cut = int(round(len(a0) * held_out))
    test, train = (order[:cut], order[cut:]) if cut else (order, order)
    readout_step = float(model.layers[-1].scale[0])
    optimizer = torch.optim.Adam(tuned.parameters(), lr=lr or _default_lr(len(train), batch))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    generator = torch.Generator().manual_seed(seed)
    best = (*_score(tuned, a0[test], labels[test], readout_step, spike_weight), 0)
    tuned.history = [dict(epoch=0, loss=None, held_out_loss=best[2], accuracy=best[0],
                          spiking=best[1])]
    state = {k: v.clone() for k, v in tuned.state_dict().items()}
    bar = tqdm(range(1, epochs + 1), desc="fine-tuning", unit="epoch", disable=not progress)
    for epoch in bar:
        total = 0.0
        for chunk in train[torch.randperm(len(train), generator=generator)].split(batch):
            logits, hidden = tuned.integer_forward(a0[chunk])
            loss = _objective(logits, hidden, labels[chunk], readout_step, spike_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(chunk)
        schedule.step()
        score = _score(tuned, a0[test], labels[test], readout_step, spike_weight)
        tuned.history.append(dict(epoch=epoch, loss=total / len(train),
                                  held_out_loss=score[2], accuracy=score[0], spiking=score[1]))
        bar.set_postfix(loss=f"{total / len(train):.3f}", held_out=f"{score[0]:.4f}",
                        spiking=f"{score[1]:.3f}")
        if score[2] < best[2] or keep == "last":
            best = (*score, epoch)
            state = {k: v.clone() for k, v in tuned.state_dict().items()}
    tuned.load_state_dict(state)
    tuned.best_epoch = best[3]
    return tuned
