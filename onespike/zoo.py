"""Built-in data sets and reference models for the demo, the tests and the benchmarks.

Nothing here downloads: sklearn's digits ship with scikit-learn, and MNIST / Fashion-MNIST
are read from the standard IDX ``.gz`` files on disk, found by :func:`data_dir`: an explicit
folder (the ``data_dir`` argument; a bench's ``--data DIR``), else ``$ONESPIKE_DATA``, else
``$XDG_DATA_HOME/onespike`` (by default ``~/.local/share/onespike``). Each data set is a subfolder (``mnist/``,
``fashion-mnist/``) with the four files of :data:`IDX_FILES`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onespike.errors import OnespikeError

__all__ = ["Dataset", "digits", "idx_dataset", "data_dir", "check_files", "DATA_ENV", "IDX_FILES", "mlp",
           "digits_cnn",
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


DATA_ENV = "ONESPIKE_DATA"

# the standard files, byte for byte (SHA-256), as published by their authors
IDX_FILES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}


def data_dir(explicit=None) -> Path:
    """The folder that holds the IDX data sets: ``explicit``, else ``$ONESPIKE_DATA``, else
    ``$XDG_DATA_HOME/onespike`` (``~/.local/share/onespike``)."""
    if explicit:
        return Path(explicit)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return _default_dir()


def _default_dir() -> Path:
    """The folder used without an explicit one and without ``$ONESPIKE_DATA``."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "onespike"


def _missing(folder: Path, name: str) -> OnespikeError:
    files = "\n".join(f"  {file}  sha256 {digest}" for file, digest in IDX_FILES[name].items())
    return OnespikeError(
        f"data set {name!r} not found in {folder}: put the four standard IDX files there, "
        f"or set ${DATA_ENV} to the folder that holds {name}/ (unset, the folder is "
        f"{_default_dir()}):\n{files}")


def check_files(name="mnist", folder=None) -> Path:
    """The folder of data set ``name``, with every IDX file present and byte-identical to
    the standard one (else a one-paragraph error that says where the files go)."""
    if name not in IDX_FILES:
        raise OnespikeError(f"unknown data set {name!r}; choose one of {', '.join(IDX_FILES)}")
    folder = data_dir(folder) / name
    for file, digest in IDX_FILES[name].items():
        path = folder / file
        if not path.is_file():
            raise _missing(folder, name)
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise OnespikeError(f"{path} is not the standard {name} file (SHA-256 differs); "
                                f"expected {digest}")
    return folder


def _read_idx(path: Path, header: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise OnespikeError(f"cannot read {path}: {e}") from None
    return np.frombuffer(raw, dtype=np.uint8, offset=header)


def idx_dataset(name="mnist", data_dir=None, *, normalize=False, image=False) -> Dataset:
    """MNIST or Fashion-MNIST from the standard IDX ``.gz`` files in ``data_dir/name``
    (``data_dir``: see :func:`data_dir`).

    Pixels are scaled to [0, 1]; ``normalize`` then applies the usual mean/std
    (0.1307/0.3081 for MNIST, computed from the training split otherwise).
    """
    folder = check_files(name, data_dir)
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


def row_rnn(features, hidden, classes, *, cap=1.0):
    """A ReLU RNN over the rows of an image, ``(batch, rows, features)`` → logits.

    ``h_t = clamp(W_x·x_t + W_h·h_{t−1} + b, 0, cap)`` from ``h_{−1} = 0`` (two Linear layers
    in a loop over the rows: ``onespike.mapper`` maps it as an ``nn.RNN``), the last state
    into a Linear readout; ``W_h`` starts as the identity (an IRNN). The cap puts the
    mapper's top level at ``cap``, so setting ``model.bits = A`` trains on the grid the
    integer network uses: the input on steps of ``1/(2**A − 1)`` and the state on steps of
    ``cap/(2**A − 1)``, rounded with a straight-through gradient (training mode only).
    """
    import torch
    import torch.nn as nn

    def grid(x, step, top):
        return x + (torch.clamp(torch.round(x / step), 0, top) * step - x).detach()

    class RowRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.x, self.h = nn.Linear(features, hidden), nn.Linear(hidden, hidden, bias=False)
            self.out, self.bits = nn.Linear(hidden, classes), None
            with torch.no_grad():
                self.h.weight.copy_(torch.eye(hidden))

        def forward(self, x):
            levels = (1 << self.bits) - 1 if self.training and self.bits else None
            h = x.new_zeros(x.shape[0], hidden)
            for t in range(x.shape[1]):
                frame = x[:, t] if levels is None else grid(x[:, t], 1 / levels, levels)
                h = (self.x(frame) + self.h(h)).clamp(0, cap)
                if levels is not None:
                    h = grid(h, cap / levels, levels)
            return self.out(h)

    return RowRNN()


def train(model, data: Dataset, *, epochs=30, batch=64, lr=2e-3, seed=0, progress=False,
          clip=None):
    """Adam + cross-entropy with a cosine schedule; returns the model in eval mode.
    ``clip``: the largest gradient norm (recurrent networks), or None."""
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
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
        sched.step()
    return model.eval()


def float_accuracy(model, x, y) -> float:
    import torch

    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(x), dtype=torch.float32))
    return float((out.argmax(1).numpy() == np.asarray(y)).mean())
