"""Rate coding against T next to TTFS, on the same integer networks (act_bits 4, weight_bits 8).

For each T: accuracy, spikes and synaptic ops per sample of the unipolar and the bipolar
rate code (analog input current, sim/rate.py), whether the hidden spike counts equal the
quantized activations on every test sample ("exact"; only possible at T = A), agreement
of the predicted class with the quantized network, and the steps run / the step from which
the readout's input was silent in every sample (the logits were final). TTFS row: the quantized network (the golden
model's closed form, bit-identical to its event simulation), its spikes and ops.

Ops count spike-driven additions after the input layer; the input layer costs the same in
every coding (TTFS: input spikes × fan-out; rate: multiply-accumulates of the constant
analog current, computed once) and is printed once per model.

Run: .venv/bin/python bench/rate_table.py [--cnn] [--mnist] [--mnist-samples N]
     [--steps 1 2 4 ...]
"""

import argparse
import sys

import numpy as np

from onespike import zoo
from onespike.ir import MaxPool
from onespike.sim import closed_form, rate_sim, synaptic_fanout


def ttfs_row(net, a0):
    """The quantized network (TTFS) and its input-layer ops per sample."""
    q = closed_form(net, a0)
    first = next(i for i, l in enumerate(net.layers) if not isinstance(l, MaxPool))
    input_ops = ((q.activations[first] > 0) * synaptic_fanout(net.layers[first]))
    input_ops = input_ops.reshape(len(a0), -1).sum(1)
    return q, input_ops


def exact_cell(net, r, q, steps):
    """``yes`` if every hidden count equals the quantized activation, else the share of
    (sample, neuron) counts that differ; "-" where T ≠ A (counts then mean c·A/T)."""
    if any(l.levels != steps for l in net.layers[:-1] if not isinstance(l, MaxPool)):
        return "-"
    maps = range(1, len(r.counts))
    wrong = sum(int((r.counts[i] != q.activations[i]).sum()) for i in maps)
    return "yes" if wrong == 0 else f"{wrong / sum(q.activations[i].size for i in maps):.1%}"


def header(bipolar):
    return (f"{'acc':<6} {'agree':>6} {'exact':>5} {'spikes':>8}"
            + (f" {'(neg.)':>8}" if bipolar else "") + f" {'ops':>9} steps/final")


def rate_cells(net, a0, q, labels, steps, bipolar):
    r = rate_sim(net, a0, steps=steps, bipolar=bipolar)
    agree = float(np.mean(r.classes == q.classes))
    acc = float(np.mean(r.classes == labels))
    settled = int(r.silent_from[-1].max(initial=0))
    return (f"{acc:.4f} {agree:6.1%} {exact_cell(net, r, q, steps):>5} "
            f"{r.spikes.mean():8.1f}"
            + (f" ({r.negative_spikes.mean():6.1f})" if bipolar else "")
            + f" {r.synaptic_ops.mean():9.0f} {r.total_steps:4d}/{settled:<4d}")


def table(name, net, x, labels, steps_list):
    a0 = net.encoder.encode(x)
    q, input_ops = ttfs_row(net, a0)
    sizes = [f"{l.kind} {'x'.join(map(str, l.out_shape))}" for l in net.layers]
    levels = [l.levels for l in net.layers[:-1] if not isinstance(l, MaxPool)]
    print(f"\n{name}: {', '.join(sizes)}; A = {levels}, "
          f"{len(labels)} test samples")
    print(f"  input layer: {input_ops.mean():.0f} ops/sample in every coding")
    print(f"  {'':>9}  {header(False):<49} | {header(True)}")
    hidden_q = q.synaptic_ops - input_ops
    print(f"  {'TTFS':>9}  {np.mean(q.classes == labels):.4f} {1:6.1%} {'yes':>5} "
          f"{q.spikes.mean():8.1f} {hidden_q.mean():9.0f} {net.latency_steps:4d} "
          f"(window sum; one spike per neuron at most)")
    for steps in steps_list:
        uni = rate_cells(net, a0, q, labels, steps, bipolar=False)
        bip = rate_cells(net, a0, q, labels, steps, bipolar=True)
        print(f"  {'T=' + str(steps):>9}  {uni:<49} | {bip}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 15, 30, 60])
    parser.add_argument("--mnist", action="store_true", help="add the MNIST 784-128-10 MLP")
    parser.add_argument("--mnist-samples", type=int, default=2000)
    parser.add_argument("--cnn", action="store_true", help="add the digits CNN (conv, BN, "
                        "max/avg pool)")
    args = parser.parse_args()
    import torch

    from onespike.mapper import convert

    torch.set_num_threads(2)
    print(f"command: python {' '.join(sys.argv)}")
    print("columns: accuracy, class agreement with the quantized network, hidden counts ="
          " quantized activations on all samples (only at T = A), spikes/sample (negative),"
          " ops/sample after the input layer, steps run / step from which the readout's input"
          " was silent in every sample (logits final)")
    data = zoo.digits()
    cases = [("digits MLP 64-64-10", [64, 64, 10], data, {}, None),
             ("digits MLP 64-64-64-10", [64, 64, 64, 10], data, {}, None)]
    if args.cnn:
        cases.append(("digits CNN", None, zoo.digits(image=True, normalize=True), {}, None))
    if args.mnist:
        cases.append(("MNIST MLP 784-128-10", [784, 128, 10], zoo.idx_dataset("mnist"),
                      dict(epochs=4, batch=128, lr=1e-3), args.mnist_samples))
    for name, sizes, d, kw, limit in cases:
        model = zoo.train(zoo.mlp(sizes) if sizes else zoo.digits_cnn(), d, **kw)
        net = convert(model, d.x_train, act_bits=4, weight_bits=8)
        x, y = d.x_test[:limit], d.y_test[:limit]
        print(f"\n[{name}: float accuracy {zoo.float_accuracy(model, x, y):.4f}]", end="")
        table(name, net, x, y, args.steps)


if __name__ == "__main__":
    main()
