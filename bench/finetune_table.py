"""Fine-tuning against plain conversion, on the issue's two networks: test accuracy per
activation bit width, then what the spike penalty trades (spikes per neuron, cycles per
image at 4 lanes from the cycle model) and what a finer input window buys at 1 bit.
Every accuracy is the exact integer network's (golden model, closed form).

Run: .venv/bin/python bench/finetune_table.py [--mnist] [--epochs N]
     (digits: about a minute; --mnist adds the 784-128-10 MLP on ../shared/data, about
     10 minutes on 2 cores)
"""

import argparse

import numpy as np
import torch
from torch import nn

from onespike import zoo
from onespike.hdl.cycles import cycle_estimate
from onespike.hdl.streams import discard
from onespike.hdl.top import Accelerator
from onespike.mapper import convert, finetune
from onespike.sim.golden import closed_form


def measure(net, data, lanes=4):
    """(test accuracy, spikes per hidden neuron, steady cycles per image)."""
    a0 = net.encoder.encode(data.x_test)
    trace = closed_form(net, a0)
    neurons = sum(int(np.prod(l.out_shape)) for l in net.layers[:-1] if hasattr(l, "ramp"))
    spikes = [float((np.asarray(t) >= 0).sum()) / len(a0) for t in trace.times]
    cycles = cycle_estimate(discard(Accelerator(net, lanes=lanes)), spikes)["steady"]
    return float(np.mean(trace.classes == data.y_test)), float(trace.spikes.mean()) / neurons, \
        cycles


def models(mnist):
    torch.manual_seed(0)
    digits = zoo.digits()
    bn = nn.Sequential(nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Linear(48, 32),
                       nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    out = {"digits 64-48-32-10 BN": (zoo.train(bn, digits), digits)}
    if mnist:
        data = zoo.idx_dataset("mnist")
        out["MNIST 784-128-10"] = (zoo.train(zoo.mlp([784, 128, 10]), data, epochs=5), data)
    return out


def row(cells):
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", action="store_true", help="add the MNIST MLP")
    parser.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs")
    args = parser.parse_args()
    for name, (model, data) in models(args.mnist).items():
        x, y = data.x_train, data.y_train
        calib = x[:5000]
        flt = zoo.float_accuracy(model, data.x_test, data.y_test)
        print(f"\n### {name} (float {flt:.1%}, {args.epochs} epochs)\n")
        row(["act bits", "plain", "fine-tuned", "spikes/neuron plain", "tuned"])
        row(["---"] * 5)
        for bits in (4, 3, 2, 1):
            plain = measure(convert(model, calib, act_bits=bits), data)
            tuned = finetune(model, x, y, act_bits=bits, epochs=args.epochs, progress=False)
            fine = measure(tuned.network(), data)
            row([bits, f"{plain[0]:.2%}", f"{fine[0]:.2%}", f"{plain[1]:.3f}", f"{fine[1]:.3f}"])
        print("\nspike penalty at act_bits 2 (cycles: steady cycles per image, 4 lanes):\n")
        row(["spike_weight", "accuracy", "spikes/neuron", "cycles/image"])
        row(["---"] * 4)
        for weight in (0.0, 0.5, 2.0):
            tuned = finetune(model, x, y, act_bits=2, epochs=args.epochs, spike_weight=weight,
                             progress=False)
            acc, spikes, cycles = measure(tuned.network(), data)
            row([weight, f"{acc:.2%}", f"{spikes:.3f}", cycles])
        print("\ninput window at act_bits 1 (single-step hidden layers):\n")
        row(["input bits", "plain", "fine-tuned", "cycles/image"])
        row(["---"] * 4)
        for input_bits in (1, 4):
            plain = measure(convert(model, calib, act_bits=1, input_bits=input_bits), data)
            tuned = finetune(model, x, y, act_bits=1, input_bits=input_bits,
                             epochs=args.epochs, progress=False)
            fine = measure(tuned.network(), data)
            row([input_bits, f"{plain[0]:.2%}", f"{fine[0]:.2%}", fine[2]])


if __name__ == "__main__":
    main()
