"""IR: validation, read-only arrays, and the .npz file format."""

import json

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.ir import Conv, Dense, Encoder, MaxPool, Network, load, save
from onespike.sim import random_network


def test_roundtrip_keeps_every_array_and_fact(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(10):
        net = random_network(rng)
        path = save(net, tmp_path / f"net{i}.npz")
        back = load(path)
        assert back.header() == net.header()
        for name, array in net.arrays().items():
            np.testing.assert_array_equal(back.arrays()[name], array)


def test_file_is_readable_without_onespike(tmp_path):
    net = random_network(np.random.default_rng(4))
    path = save(net, tmp_path / "net.npz")
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(npz["header"].tobytes())
        assert header["format"] == "onespike.net" and header["version"] == 2
        assert len(header["layers"]) == len(net.layers)


def test_arrays_are_read_only():
    net = random_network(np.random.default_rng(5))
    with pytest.raises(ValueError):
        net.layers[-1].weight[0] = 1


def test_truncated_file(tmp_path):
    path = save(random_network(np.random.default_rng(6)), tmp_path / "net.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnespikeError, match="not a readable .npz"):
        load(path)


def test_foreign_npz_and_missing_file(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(OnespikeError, match="not a onespike network"):
        load(tmp_path / "other.npz")
    with pytest.raises(OnespikeError, match="does not exist"):
        load(tmp_path / "nothing.npz")


def test_inconsistent_widths_refused(tmp_path):
    net = random_network(np.random.default_rng(8))
    path = save(net, tmp_path / "net.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["header"].tobytes())
    synaptic = next(l for l in header["layers"] if l["kind"] != "maxpool")
    synaptic["membrane_bits"] -= 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(OnespikeError, match="inconsistent widths"):
        load(path)


def test_files_with_one_integer_per_geometry_value_still_load(tmp_path):
    """Files written before rectangular kernels hold ``kernel``, ``stride``, ``padding`` and
    ``pool`` as one integer for both axes."""
    encoder = Encoder(shape=(2, 6, 6), act_bits=2, scale=np.ones(2), offset=np.zeros(2))
    conv = Conv(in_shape=(2, 6, 6), weight=np.ones((3, 2, 3, 3)), bias=[0, 1, 2],
                ramp=[1, 2, 3], act_bits=2, scale=1.0, stride=2, padding=1)
    pool = MaxPool(in_shape=conv.out_shape, kernel=2, stride=1)
    readout = Dense(in_shape=pool.out_shape, weight=np.ones((2, 12)), bias=[0, 0],
                    ramp=None, act_bits=None, scale=1.0, pool=(1, 1))
    net = Network(encoder, (conv, pool, readout))
    path = save(net, tmp_path / "net.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["header"].tobytes())
    assert header["layers"][0]["stride"] == [2, 2]
    for entry in header["layers"]:
        for key in ("kernel", "stride", "padding", "pool"):
            if key in entry:
                entry[key] = entry[key][0]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    old = load(path)
    assert old.layers[0].stride == (2, 2) and old.layers[0].padding == (1, 1)
    assert old.layers[1].kernel == (2, 2) and old.layers[2].pool == (1, 1)
    assert old.header() == net.header()


def test_save_leaves_nothing_on_failure(tmp_path, monkeypatch):
    net = random_network(np.random.default_rng(9))

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        save(net, tmp_path / "net.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(ramp=[0, 1]), "ramp R must be a positive integer"),
    (dict(ramp=[1]), "ramp has 1 values for 2 output channels"),
    (dict(weight=np.ones((2, 4))), "has 4 inputs"),
    (dict(act_bits=9), "act_bits must be an integer from 1 to 8"),
    (dict(ramp=None), "neither ramp nor act_bits"),
    (dict(scale=float("nan")), "NaN"),
])
def test_dense_validation_messages(kwargs, message):
    base = dict(in_shape=(3,), weight=np.ones((2, 3)), bias=[0, 0], ramp=[1, 1], act_bits=4,
                scale=1.0)
    with pytest.raises(OnespikeError, match=message):
        Dense(**{**base, **kwargs})


def test_conv_and_encoder_validation_messages():
    conv = dict(in_shape=(1, 5, 5), bias=[0], ramp=[1], act_bits=2, scale=1.0)
    with pytest.raises(OnespikeError, match=r"padding \(3, 3\) must be smaller than the "
                                            r"kernel \(3, 3\)"):
        Conv(**conv, weight=np.ones((1, 1, 3, 3)), padding=3)
    with pytest.raises(OnespikeError, match=r"padding \(1, 1\) must be smaller than the "
                                            r"kernel \(3, 1\)"):
        Conv(**conv, weight=np.ones((1, 1, 3, 1)), padding=(1, 1))
    with pytest.raises(OnespikeError, match="stride must be an integer ≥ 1 or a"):
        Conv(**conv, weight=np.ones((1, 1, 3, 1)), stride=(1, 0))
    with pytest.raises(OnespikeError, match=r"maxpool padding \(0, 2\) must be at most half"):
        MaxPool(in_shape=(1, 5, 5), kernel=(1, 3), stride=1, padding=(0, 2))
    with pytest.raises(OnespikeError, match="scale must be positive"):
        Encoder(shape=(4,), act_bits=4, scale=[0.0], offset=[0.0])
    with pytest.raises(OnespikeError, match="expects"):
        Encoder(shape=(4,), act_bits=4, scale=[1.0], offset=[0.0]).encode(np.zeros((2, 5)))
