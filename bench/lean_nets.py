"""Bench networks of bench/lean_table.py, trained once and cached under build/bench/."""
from pathlib import Path

import numpy as np

ROOT = Path("build/bench")


def fashion_cnn():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),     # 8x12x12
        nn.Conv2d(8, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # 16x4x4
        nn.Flatten(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))


def bench_net(name):
    """``(net, x_test[:200])`` for ``mlp`` (MNIST 784-128-10), ``cnn`` (zoo.mnist_cnn on
    MNIST) or ``fashion`` (the Fashion-style CNN on Fashion-MNIST)."""
    import torch
    from onespike import zoo
    from onespike.ir import load, save
    from onespike.mapper import convert

    path = ROOT / f"{name}.npz"
    xpath = ROOT / f"{name}_x.npy"
    if not path.is_file():
        ROOT.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(1)
        if name == "mlp":
            data = zoo.idx_dataset("mnist")
            model = zoo.train(zoo.mlp([784, 128, 10]), data, epochs=1, batch=128, lr=1e-3)
        else:
            data = zoo.idx_dataset("mnist" if name == "cnn" else "fashion-mnist", image=True)
            model = zoo.train(zoo.mnist_cnn() if name == "cnn" else fashion_cnn(), data,
                              epochs=1, batch=128, lr=1e-3)
        net = convert(model, data.x_train[:5000], act_bits=4, weight_bits=8)
        save(net, path)
        np.save(xpath, data.x_test[:200])
    return load(path), np.load(xpath)
