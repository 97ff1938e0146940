"""Built-in data sets and reference models for the demo, the tests and the benchmarks.

Nothing here downloads: sklearn's digits ship with scikit-learn, and MNIST / Fashion-MNIST
are read from IDX files on disk (``../shared/data/`` beside the repository by default).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onespike.errors import OnespikeError

__all__ = ["Dataset", "digits", "idx_dataset", "default_data_dir", "mlp", "digits_cnn",
           "mnist_cnn", "train", "float_accuracy"]


@dataclass(frozen=True)
class Dataset:
    """Float inputs as the model sees them and integer labels, split for training/testing."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits(*, image=False, normalize=False, seed=0) -> Dataset:
    """sklearn's 8×8 digits (1797 images, pixel values 0..16), 75/25 split.

    ``image`` gives ``(1, 8, 8)`` samples instead of 64 features; ``normalize`` applies a
    mean/std normalization from the training split (negative inputs, as users often feed).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], data.target[order].astype(np.int64)
    split = len(x) * 3 // 4
    if normalize:
        mean, std = x[:split].mean(), x[:split].std()
        x = (x - mean) / std
    if image:
        x = x.reshape(-1, 1, 8, 8)
    return Dataset("digits", x[:split], y[:split], x[split:], y[split:])


def default_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _read_idx(path: Path, header: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise OnespikeError(f"cannot read {path}: {e}") from None
    return np.frombuffer(raw, dtype=np.uint8, offset=header)


def idx_dataset(name="mnist", data_dir=None, *, normalize=False, image=False) -> Dataset:
    """MNIST or Fashion-MNIST from the standard IDX ``.gz`` files in ``data_dir/name``.

    Pixels are scaled to [0, 1]; ``normalize`` then applies the usual mean/std
    (0.1307/0.3081 for MNIST, computed from the training split otherwise).
    """
    folder = Path(data_dir or default_data_dir()) / name
    if not folder.is_dir():
        raise OnespikeError(f"data set folder {folder} not found; pass the folder that holds "
                            f"the IDX files")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 16)
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 8)
        x = images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
        if len(x) != len(labels):
            raise OnespikeError(f"{folder}: {prefix} images and labels differ in count")
        parts[split] = (x, labels.astype(np.int64))
    if normalize:
        mean, std = parts["train"][0].mean(), parts["train"][0].std()
        parts = {k: ((x - mean) / std, y) for k, (x, y) in parts.items()}
    if not image:
        parts = {k: (x.reshape(len(x), -1), y) for k, (x, y) in parts.items()}
    return Dataset(name, *parts["train"], *parts["test"])


def mlp(sizes):
    """``Linear–ReLU`` stack with the given layer sizes (inputs first, classes last)."""
    import torch.nn as nn

    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def digits_cnn():
    """8×8 digits CNN with batch norm, max pooling and average pooling."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(),   # 12×8×8
        nn.MaxPool2d(2),                                                  # 12×4×4
        nn.Conv2d(12, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(),  # 24×4×4
        nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.1),                   # 24×2×2
        nn.Linear(96, 10))


def mnist_cnn():
    """A small 28×28 CNN (conv–BN–ReLU–maxpool ×2, avgpool, linear readout)."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=1, padding=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2),                                                   # 8×14×14
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # 16×7×7
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),   # 32×7×7
        nn.AvgPool2d(2), nn.Flatten(),                                     # 32×3×3
        nn.Linear(288, 10))


def train(model, data: Dataset, *, epochs=30, batch=64, lr=2e-3, seed=0, progress=False):
    """Adam + cross-entropy with a cosine schedule; returns the model in eval mode."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    torch.manual_seed(seed)
    x = torch.as_tensor(data.x_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc=f"training on {data.name}", disable=not progress,
                  unit="epoch", leave=False):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


def float_accuracy(model, x, y) -> float:
    import torch

    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(x), dtype=torch.float32))
    return float((out.argmax(1).numpy() == np.asarray(y)).mean())
