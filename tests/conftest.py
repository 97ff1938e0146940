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
