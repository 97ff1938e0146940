"""Float / quantized / spiking accuracy for act_bits 2..8 (weight_bits 8) on the reference models.

Run: .venv/bin/python bench/accuracy_table.py
"""

import sys

import torch

from onespike import zoo
from onespike.sim.evaluate import evaluate
from onespike.mapper import convert


def main():
    torch.set_num_threads(2)
    print(f"command: python {' '.join(sys.argv)}")
    cases = [("digits MLP 64-64-10", zoo.digits(), lambda: zoo.mlp([64, 64, 10]), {}),
             ("digits CNN (BN, max/avg pool, normalized)",
              zoo.digits(image=True, normalize=True), zoo.digits_cnn, {}),
             ("MNIST MLP 784-128-10", zoo.idx_dataset("mnist"), lambda: zoo.mlp([784, 128, 10]),
              dict(epochs=4, batch=128, lr=1e-3))]
    for name, data, build, kw in cases:
        model = zoo.train(build(), data, **kw)
        fl = zoo.float_accuracy(model, data.x_test, data.y_test)
        print(f"\n{name}: float {fl:.4f} on {len(data.y_test)} test samples")
        print("act_bits  quantized  spiking")
        for bits in range(2, 9):
            net = convert(model, data.x_train, act_bits=bits, weight_bits=8)
            q, _ = evaluate(net, data.x_test, data.y_test, mode="closed", progress=False)
            s, _ = evaluate(net, data.x_test, data.y_test, mode="event", progress=False)
            print(f"{bits:>8}  {q['accuracy']:.4f}     {s['accuracy']:.4f}")


if __name__ == "__main__":
    main()
