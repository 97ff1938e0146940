"""The tap decoder: decoding a block of transfers at once (the harness log's fast path)
gives what one call per transfer gives."""

import numpy as np
import pytest

from onespike.ir import NO_SPIKE
from onespike.sim.observed import TapDecoder


def transfers(rng, neurons, levels, samples):
    """A stream of ``samples`` samples (and one more beyond them): per step a few spikes,
    repeats of a neuron included, then the step's marker. Rows ``(flat, step, end)``."""
    rows = []
    for _ in range(samples):
        for step in range(levels):
            for neuron in rng.integers(0, neurons, rng.integers(0, 4)):
                rows.append((int(neuron), step, 0))
            rows.append((0, step, 1))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def as_index(flat, shape):
    if len(shape) == 1:
        return flat
    c, y, x = np.unravel_index(flat, shape)
    return {"x": int(x), "y": int(y), "c": int(c)}


@pytest.mark.parametrize("shape", [(12,), (2, 3, 4)])
def test_a_block_of_spikes_decodes_like_one_call_each(shape):
    rng = np.random.default_rng(len(shape))
    levels, samples = 3, 4
    rows = transfers(rng, int(np.prod(shape)), levels, samples + 1)
    one, block = (TapDecoder([(shape, levels, 5)], 10, samples) for _ in range(2))
    for flat, step, end in rows:
        one.spike(0, as_index(flat, shape), int(step), bool(end))
    cut = len(rows) // 3                         # two blocks: the second starts mid-sample
    for part in (rows[:cut], rows[cut:]):
        block.spikes(0, part[:, 0], part[:, 1], part[:, 2].astype(bool))
    assert (one.times[0] != NO_SPIKE).any()
    np.testing.assert_array_equal(block.times[0], one.times[0])
    assert block.sample_of == one.sample_of == [samples]
    assert len(block.extra) == len(one.extra) > 0      # the sample beyond the last


def test_a_block_of_logits_decodes_like_one_call_each():
    rng = np.random.default_rng(0)
    samples, classes = 3, 4
    index = np.tile(np.arange(classes), samples + 1)
    value = rng.integers(-50, 50, len(index))
    last = index == classes - 1
    one, block = (TapDecoder([((1,), 1, 0)], classes, samples) for _ in range(2))
    for i, v, l in zip(index, value, last):
        one.logit(int(i), int(v), bool(l))
    block.logit_block(index[:5], value[:5], last[:5])
    block.logit_block(index[5:], value[5:], last[5:])
    np.testing.assert_array_equal(block.logits, one.logits)
    assert block.extra == one.extra and len(one.extra) == classes
