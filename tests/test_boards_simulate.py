"""The whole board top simulated end to end: cocotb + cocotbext-uart on the UART pins send
real frames to the generated Verilog and get the golden model's answers back."""

import dataclasses

import numpy as np
import pytest

from onespike.boards.simulate import simulate_board
from onespike.ir import Network
from onespike.sim import random_inputs, random_recurrent_network


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_board_top_answers_digits_like_the_golden_model(digits_mlp_net, tmp_path, simulator):
    net, data = digits_mlp_net
    a0 = net.encoder.encode(data.x_test[:4])
    result = simulate_board(net, a0, tmp_path, lanes=8, simulator=simulator)
    assert result == {"answered": 4, "failures": []}


def test_a_board_with_one_wrong_weight_fails(digits_mlp_net, tmp_path):
    """The flow can fail: one readout weight changed in the hardware is caught."""
    net, data = digits_mlp_net
    readout = net.layers[-1]
    weight = readout.weight.copy()
    weight[:, :] += 1
    broken = Network(encoder=net.encoder,
                     layers=net.layers[:-1] + (dataclasses.replace(readout, weight=weight),))
    a0 = net.encoder.encode(data.x_test[:4])
    result = simulate_board(net, a0, tmp_path, lanes=8, hardware=broken)
    assert result["answered"] == 0
    assert "logits differ" in result["failures"][0]


def test_weights_in_ice40_spram_cells_load_and_answer(digits_mlp_net, tmp_path):
    """The SB_SPRAM256KA instances as built for the iCEBreaker, simulated with yosys' own
    cell model: weights loaded over the UART, then golden answers."""
    net, data = digits_mlp_net
    a0 = net.encoder.encode(data.x_test[:2])
    assert simulate_board(net, a0, tmp_path, lanes=2, spram=True) == {"answered": 2,
                                                                      "failures": []}


def test_board_top_answers_sequences_like_the_golden_model(tmp_path):
    """A recurrent network on the board top's UART pins: one frame a sequence (its steps
    one after the other), the class, logits and last hidden spikes of each."""
    rng = np.random.default_rng(7)
    net = random_recurrent_network(rng, max_steps=6, max_width=10)
    a0 = random_inputs(rng, net, 3)
    assert net.steps > 1
    assert simulate_board(net, a0, tmp_path, lanes=2) == {"answered": 3, "failures": []}
    assert simulate_board(net, a0[:2], tmp_path / "spram", lanes=2, spram=True) == \
        {"answered": 2, "failures": []}            # its weights in iCE40 SPRAM cells


@pytest.mark.slow      # the planned board design below covers SPRAM membranes by default
def test_membranes_in_ice40_spram_cells_answer(tmp_path):
    """Single-port membranes (a conv layer's, 17+ bits wide: one SPRAM and a narrow block
    memory beside it) in yosys' SB_SPRAM256KA cell model, weights in SPRAM as well: the
    board's answers are the golden model's."""
    from helpers import conv_case

    net, a0 = conv_case()
    assert simulate_board(net, a0[:2], tmp_path, lanes=2, spram=True, membranes="single") == \
        {"answered": 2, "failures": []}


def test_the_planned_board_design_with_single_port_membranes_answers(tmp_path):
    """The iCEBreaker planner's own design (fit: lanes, firing, single-port membranes, a
    one-bank encoder and every memory where its plan puts it, SPRAM in yosys' cell model)
    answers as the golden model does."""
    from helpers import conv_case

    net, a0 = conv_case()
    # a small network's membranes fit block RAM: they go to SPRAM as a large one's do
    placed = _planned_with_spram_membranes(net)
    assert "single" in placed.membranes and placed.encoder_banks == 1
    assert simulate_board(net, a0[:2], tmp_path, fit=placed) == {"answered": 2,
                                                                 "failures": []}


def _planned_with_spram_membranes(net):
    from onespike.boards.build import LinkOptions, fit
    from onespike.boards.platforms import board_named

    placed = fit(net, board_named("icebreaker"), 1,
                 LinkOptions(membranes="single", encoder_banks=1))
    single = [r.name for r in placed.plan.records if r.single_port]
    kinds = {**placed.plan.kinds, **{name: "spram" for name in single}}
    return dataclasses.replace(placed, plan=dataclasses.replace(placed.plan, kinds=kinds))


def test_the_synthesized_netlist_of_the_planned_design_answers(tmp_path):
    """What the build places, not the RTL: yosys' synth_ice40 netlist of the planned design
    (SB_LUT4, SB_RAM40_4K, SB_SPRAM256KA cells) on yosys' cell models, on Icarus."""
    from helpers import conv_case

    net, a0 = conv_case()
    placed = _planned_with_spram_membranes(net)
    assert simulate_board(net, a0[:1], tmp_path, fit=placed, netlist=True) == \
        {"answered": 1, "failures": []}
    cells = (tmp_path / "onespike_top_netlist.v").read_text()
    assert "SB_SPRAM256KA " in cells and "SB_RAM40_4K " in cells


@pytest.mark.slow
def test_a_netlist_with_one_wrong_weight_fails(tmp_path):
    """The netlist flow can fail: one readout weight changed in the hardware is caught."""
    from helpers import conv_case

    net, a0 = conv_case()
    readout = net.layers[-1]
    broken = Network(encoder=net.encoder, layers=net.layers[:-1] + (
        dataclasses.replace(readout, weight=readout.weight + 1),))
    result = simulate_board(net, a0[:1], tmp_path, fit=_planned_with_spram_membranes(net),
                            netlist=True, hardware=broken)
    assert result["answered"] == 0 and "logits differ" in result["failures"][0]
