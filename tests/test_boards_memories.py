"""Board memory mapping: weights in (a behavioural model of) iCE40 SPRAM, loaded at run time
over the host link, then inferences equal to the golden model; the fit check."""

import struct

import numpy as np
import pytest
from amaranth.hdl import Fragment

from onespike.boards import protocol as proto
from onespike.boards.build import fit
from onespike.boards.link import LinkedAccelerator
from onespike.boards.memories import (MemoryMapper, MemoryRecord, OnPlatform,
                                     all_weights_in_spram, inventory, load_image,
                                     plan_memories, sized_inventory, skeleton)
from onespike.boards.platforms import board_named
from onespike.errors import OnespikeError
from onespike.hdl.generate import accelerator
from onespike.hdl.streams import discard
from onespike.sim import closed_form, random_network, random_recurrent_network
from helpers import CLOCK_HZ, infer, new_link, random_dense, run_link


def test_weights_loaded_into_spram_at_run_time_give_golden_answers():
    net, a0 = random_dense(11, layers=3, width=10, samples=2)
    top, link, plan = all_weights_in_spram(
        lambda load_bytes: new_link(net, lanes=3, load_bytes=load_bytes), model=True)
    assert len(plan.entries) == len(net.layers)          # every weight memory moved
    image = load_image(plan)
    assert len(image) == plan.load_bytes
    golden = closed_form(net, a0)
    half = len(image) // 2

    def load(offset, data):
        return proto.frame(proto.HOST_SYNC, proto.Command.LOAD,
                           struct.pack("<I", offset) + data)

    async def script(ctx, line):
        out = []
        for frame in [proto.frame(proto.HOST_SYNC, proto.Command.IDENTIFY),
                      infer(a0[0].reshape(-1)),                  # not loaded yet
                      load(0, image[:half]),
                      load(half + 1, image[half + 1:]),          # a gap: refused
                      load(half, image[half:])[:-1] + b"\0",      # corrupt: rolled back
                      load(half, image[half:]),
                      proto.frame(proto.HOST_SYNC, proto.Command.IDENTIFY),
                      infer(a0[0].reshape(-1)), infer(a0[1].reshape(-1))]:
            await line.send(ctx, frame)
            out.append(await line.reply(ctx))
        return out

    out = run_link(link, script, top=top)
    before = proto.Identity.unpack(out[0][1])
    assert (before.load_bytes, before.loaded) == (len(image), False)
    assert out[1] == (proto.Reply.ERROR, bytes([proto.Fault.NOT_LOADED]))
    assert out[2] == (proto.Reply.LOADED, b"")
    assert out[3] == (proto.Reply.ERROR, bytes([proto.Fault.RANGE]))
    assert out[4] == (proto.Reply.ERROR, bytes([proto.Fault.CHECKSUM]))
    assert out[5] == (proto.Reply.LOADED, b"")
    assert proto.Identity.unpack(out[6][1]).loaded
    identity = proto.Identity.of(net, clock_hz=CLOCK_HZ, load_bytes=len(image))
    for k in range(2):
        cls, logits, _ = proto.decode_result(out[7 + k][1], identity)
        assert (cls, logits) == (golden.classes[k], list(golden.logits[k]))


def test_memories_are_named_by_their_path_in_the_design(digits_mlp_net):
    net, _ = digits_mlp_net
    names = [r.name for r in inventory(new_link(net, lanes=2))]
    assert "accelerator.layer0.weights" in names and "accelerator.layer1.membrane" in names
    assert len(set(names)) == len(names)
    weights = [r for r in inventory(new_link(net, lanes=2)) if r.weights]
    assert [r.name for r in weights] == ["accelerator.layer0.weights",
                                         "accelerator.layer1.weights"]
    assert weights[0].rom and weights[0].read_ports == 1 and weights[0].depth == 64 * 32


def test_fit_plans_by_name_and_refuses_what_cannot_fit_with_numbers(digits_mlp_net):
    net, _ = digits_mlp_net
    placed = fit(net, board_named("icebreaker"), 2)
    assert placed.plan.blocks <= 30 and placed.lanes == (2, 2)
    kinds = placed.plan.kinds
    assert kinds["accelerator.layer0.weights"] in ("block", "spram")
    assert "block" in {kinds[n] for n in kinds if "constants" in n or "heads" in n} or \
        placed.plan.blocks == 30                         # spare EBR takes small ones
    # at 1 lane the weights are 4096 and 640 rows deep: on ECP5 one block per bit
    sliced = fit(net, board_named("ulx3s-85f"), 1).plan.names("sliced")
    assert sliced == ["accelerator.layer0.weights", "accelerator.layer1.weights"]
    assert not fit(net, board_named("ulx3s-85f"), 16).plan.names("sliced")   # 64 rows
    with pytest.raises(OnespikeError, match=r"does not fit icebreaker \(iCE40UP5K\): \d+ "
                                            r"EBR \(4 kbit\) blocks needed, 30 available.*"
                                            r"--lanes \d+ fits"):
        fit(net, board_named("icebreaker"), 64)
    with pytest.raises(OnespikeError, match="unknown board 'icebraker'"):
        board_named("icebraker")


def test_a_memory_the_plan_does_not_name_is_refused():
    net, _ = random_dense(12, layers=2, width=6, samples=1)
    link = new_link(net, lanes=2)
    platform = MemoryMapper().configure(kinds={"nothing": "block"}, strict=True)
    with pytest.raises(OnespikeError, match=r"memory \S+ is not in the board's memory plan"):
        platform.place(Fragment.get(link, platform))


def test_bit_sliced_weights_give_golden_answers():
    net, a0 = random_dense(13, layers=3, width=10, samples=2)
    link = new_link(net, lanes=3)
    golden = closed_form(net, a0)

    async def script(ctx, line):
        out = []
        for a in a0:
            await line.send(ctx, infer(a.reshape(-1)))
            out.append(await line.reply(ctx))
        return out

    sliced = {r.name: "sliced" for r in inventory(new_link(net, lanes=3)) if r.weights}
    out = run_link(link, script, top=OnPlatform(link, MemoryMapper().configure(kinds=sliced)))
    identity = proto.Identity.of(net, clock_hz=CLOCK_HZ)
    for k, (kind, payload) in enumerate(out):
        assert kind == proto.Reply.RESULT
        cls, logits, _ = proto.decode_result(payload, identity)
        assert (cls, logits) == (golden.classes[k], list(golden.logits[k]))



@pytest.mark.parametrize("board, rows, width, kind", [
    ("ulx3s-85f", 16, 264, "logic"), ("ulx3s-85f", 32, 264, "logic"),
    ("ulx3s-85f", 64, 264, "block"), ("ulx3s-85f", 128, 33, "block"),
    ("icebreaker", 16, 264, "block")])
def test_small_roms_stay_in_logic_on_ecp5(board, rows, width, kind):
    """A core's constants (a ROM of one row per state word): with blocks to spare they go
    to block RAM, except on ECP5 while logic holds them in at most 256 LUT4 (16 and 32 rows
    of 264 bits: 122 and 243), where LUTs read them sooner than a DP16KD (5.8 ns clock to
    output, the MNIST MLP's critical path into the ramp multiply). Where yosys itself picks
    a block (128 rows of 33 bits: one DP16KD) the block stays: moving it to logic measured
    about 250 LUT4 more for 2–5 MHz at 1 and 2 lanes."""
    rom = MemoryRecord("layer0.constants", width=width, depth=rows, read_ports=1,
                       write_ports=0, weights=False, varying=width - 2)
    plan = plan_memories([rom], board_named(board))
    assert plan.kinds["layer0.constants"] == kind


FORMS = {"sweep": {}, "sorted": {"firing": "sorted"}, "single": {"membranes": "single"},
         "one bank": {"membranes": "dual-one-bank", "encoder_banks": 1},
         "dense": {"coding": "dense"}}
"""The designs the sizes must describe: firing, membranes, encoder banks, coding."""


def _sized_case(seed, lanes, form):
    """``(make, plan)``: the linked accelerator of random network ``seed`` at ``lanes`` in
    ``form`` (:data:`FORMS`), and its plan (sizes only) as the board planner makes it."""
    net = random_network(np.random.default_rng(seed), conv=seed % 2 == 1) if seed >= 0 \
        else random_recurrent_network(np.random.default_rng(-seed), max_steps=4)
    widest = max(l.weight.shape[0] for l in net.layers if hasattr(l, "weight"))
    options = {"lanes": min(lanes, widest), **FORMS[form]}
    return (lambda: LinkedAccelerator(net, divisor=10, timeout=1000, clock_hz=1_000_000,
                                      **options),
            lambda: accelerator(net, sizes=True, **options))


@pytest.mark.parametrize("seed", list(range(8)) + [-1, -2, -3])
def test_the_planner_sizes_the_memories_inventory_finds(seed):
    """The planner's inventory from the plan's sizes (no elaboration of the cores' and the
    encoder's memories) equals the elaborated one: names, shapes, ports, varying ROM bits,
    weight rows; and a skeleton of one configuration serves every other of its coding.
    Negative seeds: recurrent networks, whose inner dense core holds the memories (a
    skeleton once kept them at the lanes of the first plan, and the iCEBreaker planner
    refused the MNIST RNN for 314 blocks)."""
    def key(r):
        return (r.name, r.width, r.depth, r.read_ports, r.write_ports, r.weights, r.varying,
                r.single_port)
    frames = {}
    for form in FORMS if seed >= 0 else [f for f in FORMS if f != "dense"]:
        coding = FORMS[form].get("coding", "ttfs")
        if coding not in frames:
            frames[coding] = skeleton(discard(_sized_case(seed, 1, form)[0]()))
        for lanes in (1, 3):
            make, plan = _sized_case(seed, lanes, form)
            real = inventory(make())
            for sized in (sized_inventory(make()), sized_inventory(plan(), frames[coding])):
                assert [key(r) for r in sized] == [key(r) for r in real], (lanes, form)
                assert [r.init for r in sized if r.weights] == \
                    [r.init for r in real if r.weights]


@pytest.mark.parametrize("width", [12, 18, 33])
def test_a_single_port_ram_in_spram_reads_what_was_written(width):
    """SpramMembranes (behavioural SPRAM model) at widths of one SPRAM, one SPRAM and a
    2-bit block memory beside it, three SPRAMs: random exclusive reads and writes, each
    read returns the word last written there."""
    from amaranth.hdl import Module
    from amaranth.lib import memory
    from amaranth.sim import Simulator
    from onespike.boards.memories import SpramMembranes

    depth = 300
    ram = discard(memory.Memory(shape=width, depth=depth, init=[]))   # SpramMembranes is it
    w, r = ram.write_port(), ram.read_port()
    m = Module()
    m.submodules.ram = SpramMembranes(ram, model=True)
    rng = np.random.default_rng(width)
    ops = [(bool(rng.random() < 0.5), int(rng.integers(40)), int(rng.integers(1 << width)))
           for _ in range(400)]
    errors = []

    async def bench(ctx):
        shadow = {}
        for write, addr, value in ops:
            ctx.set(w.en, write)
            ctx.set(w.addr, addr)
            ctx.set(w.data, value)
            ctx.set(r.addr, addr)
            await ctx.tick()              # the word read at this edge is out after it
            if write:
                shadow[addr] = value
            elif addr in shadow and ctx.get(r.data) != shadow[addr]:
                errors.append((addr, ctx.get(r.data), shadow[addr]))
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not errors, errors[:3]
