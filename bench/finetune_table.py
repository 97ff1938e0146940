"""Fine-tuning against plain conversion: test accuracy of the exact integer network per
activation bit width, spikes per neuron, cycles per image (cycle model at 4 lanes; the
Amaranth-simulated RTL on --rtl images for MLPs) and µs per image at an ECP5 Fmax; then what
the spike penalty trades at 4 bits and what a finer input window buys at 1 bit.

Run: .venv/bin/python bench/finetune_table.py [MODEL...] [--epochs N] [--train N] [--bits B...] [--lr LR]
     MODEL: digits (the issue's 64-48-32-10 BN MLP, about a minute), or the cached bench
     models of bench/models.py: mnist-mlp, mnist-cnn, fashion-cnn (../shared/data; each
     fine-tuning run takes minutes on 2 cores; --train N fine-tunes on the first N images)
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from onespike import zoo
from onespike.hdl.cycles import cycle_estimate
from onespike.hdl.plan import AcceleratorPlan
from onespike.hdl.top import Accelerator
from onespike.mapper import convert, finetune
from onespike.sim.check import first_mismatch
from onespike.sim.golden import closed_form
from onespike.sim.hardware import run

sys.path.insert(0, str(Path(__file__).parent))
from models import bench_model  # noqa: E402

LANES = 4


def digits_model():
    torch.manual_seed(0)
    data = zoo.digits()
    bn = nn.Sequential(nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Linear(48, 32),
                       nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    model = zoo.train(bn, data)
    return model, data, zoo.float_accuracy(model, data.x_test, data.y_test)


def measure(net, data, rtl):
    """``{accuracy, spikes per hidden neuron, model cycles, RTL cycles or None}``."""
    a0 = net.encoder.encode(data.x_test)
    trace = closed_form(net, a0)
    neurons = sum(int(np.prod(l.out_shape)) for l in net.layers[:-1] if hasattr(l, "ramp"))
    spikes = [float((np.asarray(t) >= 0).sum()) / len(a0) for t in trace.times]
    steady = cycle_estimate(AcceleratorPlan(net, lanes=LANES), spikes)["steady"]
    measured = None
    if rtl:
        hw = run(Accelerator(net, lanes=LANES), a0[:rtl])
        assert first_mismatch(net, closed_form(net, a0[:rtl]), hw.trace) is None
        measured = float(np.diff(np.asarray(hw.sample_done)).mean())
    return {"accuracy": float(np.mean(trace.classes == data.y_test)),
            "spikes": float(trace.spikes.mean()) / neurons, "cycles": steady,
            "rtl": measured}


def row(cells):
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def bits_table(model, data, flt, args, rtl):
    x, y = data.x_train[:args.train], data.y_train[:args.train]
    row(["act bits", "float", "plain", "fine-tuned", "spikes/neuron plain → tuned",
         f"cycles/image ({LANES} lanes, model{', RTL' if rtl else ''})",
         f"µs/image at {args.fmax:g} MHz"])
    row(["---"] * 7)
    for bits in args.bits:
        plain = measure(convert(model, x[:5000], act_bits=bits), data, 0)
        tuned = measure(finetune(model, x, y, act_bits=bits, epochs=args.epochs, lr=args.lr,
                                 progress=False).network(), data, rtl)
        cycles = f"{tuned['cycles']:.0f}" + (f", {tuned['rtl']:.0f}" if rtl else "")
        row([bits, f"{flt:.2%}", f"{plain['accuracy']:.2%}", f"{tuned['accuracy']:.2%}",
             f"{plain['spikes']:.3f} → {tuned['spikes']:.3f}", cycles,
             f"{(tuned['rtl'] or tuned['cycles']) / args.fmax:.1f}"])


def penalty_table(model, data, args):
    x, y = data.x_train[:args.train], data.y_train[:args.train]
    print(f"\nspike penalty at act_bits 4 (cycles: cycle model, {LANES} lanes):\n")
    row(["spike_weight", "accuracy", "spikes/neuron", "cycles/image"])
    row(["---"] * 4)
    for weight in (0.0, 0.3, 1.0, 3.0):
        tuned = finetune(model, x, y, act_bits=4, epochs=args.epochs, lr=args.lr,
                         spike_weight=weight, progress=False)
        m = measure(tuned.network(), data, 0)
        row([weight, f"{m['accuracy']:.2%}", f"{m['spikes']:.3f}", f"{m['cycles']:.0f}"])


def input_table(model, data, args):
    x, y = data.x_train[:args.train], data.y_train[:args.train]
    print("\ninput window at act_bits 1 (single-step hidden layers):\n")
    row(["input bits", "plain", "fine-tuned", "cycles/image"])
    row(["---"] * 4)
    for input_bits in (1, 4):
        plain = measure(convert(model, x[:5000], act_bits=1, input_bits=input_bits), data, 0)
        tuned = measure(finetune(model, x, y, act_bits=1, input_bits=input_bits,
                                 epochs=args.epochs, lr=args.lr, progress=False).network(), data, 0)
        row([input_bits, f"{plain['accuracy']:.2%}", f"{tuned['accuracy']:.2%}",
             f"{tuned['cycles']:.0f}"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=["digits"])
    parser.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs")
    parser.add_argument("--train", type=int, default=None, help="fine-tune on N images")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: finetune's, 0.1 / steps per epoch)")
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 3, 2, 1],
                        help="activation bit widths of the table (default: 4 3 2 1)")
    parser.add_argument("--rtl", type=int, default=20, help="images run in the RTL (MLPs)")
    parser.add_argument("--fmax", type=float, default=58.0,
                        help="MHz for µs/image (default: the MNIST MLP on the ULX3S-85F)")
    parser.add_argument("--no-extras", action="store_true", help="bit-width table only")
    args = parser.parse_args()
    for name in args.models:
        model, data, flt = digits_model() if name == "digits" else bench_model(name)
        print(f"\n### {name} (float {flt:.2%}; {args.epochs} epochs on "
              f"{len(data.x_train[:args.train])} images)\n", flush=True)
        bits_table(model, data, flt, args, 0 if "cnn" in name else args.rtl)
        if not args.no_extras:
            penalty_table(model, data, args)
            input_table(model, data, args)
    print(f"\ncommand: python bench/finetune_table.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
