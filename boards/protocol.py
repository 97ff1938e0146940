"""The host link's framed protocol: one definition for the board (Amaranth), the host
runner and the software board used in tests.

Every frame, both ways::

    sync  kind  length (u16, LE)  payload (length bytes)  crc8 (over kind, length, payload)

``sync`` is :data:`HOST_SYNC` from the host and :data:`BOARD_SYNC` from the board. The board
handles one frame at a time and answers every frame it received whole (and every broken one)
before it reads the next, so a host sends a frame and waits for the answer.

Host → board
    ``IDENTIFY`` (empty) → ``IDENTITY`` (see :class:`Identity`).
    ``INFER`` (one byte per input neuron, activations ``0..A``) → ``RESULT``: class (u8), then
    the logits (signed, little-endian, ``logit_bytes`` each).
    ``INFER_SPIKES`` (same payload) → ``SPIKES``: the ``RESULT`` payload followed by the spike
    step (u16 LE, :data:`NO_SPIKE_STEP` for none, step within the layer's window) of every
    neuron of the last spiking layer, in C order.
    ``LOAD`` (offset u32 LE, then data bytes) → ``LOADED`` (empty): writes run-time weights,
    on boards that keep weights in memories a bitstream cannot initialise.
Board → host, on any fault: ``ERROR`` (code u8, see :class:`Fault`).
"""

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from amaranth.lib import enum
from amaranth.lib.crc import catalog

from onespike.ir import NO_SPIKE

__all__ = ["HOST_SYNC", "BOARD_SYNC", "VERSION", "MAGIC", "NO_SPIKE_STEP", "MAX_LOAD_CHUNK",
           "Command", "Reply", "Fault", "CRC8", "crc8", "frame", "Identity",
           "network_checksum", "logit_bytes", "reply_lengths", "decode_result"]

HOST_SYNC = 0xA5
BOARD_SYNC = 0x5A
VERSION = 1
MAGIC = b"1SPK"
NO_SPIKE_STEP = 0xFFFF
MAX_LOAD_CHUNK = 1024      # data bytes per LOAD frame the host sends


# The enums are Python IntEnums for the host and 8-bit shapes for the board's logic
# (``Signal(Reply)``, layout fields), so both sides use the same values.

class Command(enum.IntEnum, shape=8):
    IDENTIFY = ord("I")
    INFER = ord("X")
    INFER_SPIKES = ord("S")
    LOAD = ord("W")


class Reply(enum.IntEnum, shape=8):
    IDENTITY = ord("i")
    RESULT = ord("r")
    SPIKES = ord("s")
    LOADED = ord("w")
    ERROR = ord("e")


class Fault(enum.IntEnum, shape=8):
    NONE = 0         # no fault (the board never sends it)
    FRAMING = 1      # a byte's stop bit was low (wrong baud rate, noise)
    OVERRUN = 2      # a byte arrived before the previous one was taken, or while answering
    CHECKSUM = 3     # the frame's crc8 did not match; its result was thrown away
    COMMAND = 4      # unknown command
    LENGTH = 5       # payload length wrong for the command
    TIMEOUT = 6      # the frame stopped arriving half-way
    RANGE = 7        # an activation above A, or a load past the end of the weights
    NOT_LOADED = 8   # INFER before all run-time weights were loaded

    def describe(self) -> str:
        return {
            Fault.NONE: "the board reported an error without a fault code",
            Fault.FRAMING: "UART framing error (a stop bit was low): check the baud rate",
            Fault.OVERRUN: "UART overrun: a byte arrived while the board was busy",
            Fault.CHECKSUM: "the board received a frame with a bad checksum",
            Fault.COMMAND: "the board does not know that command",
            Fault.LENGTH: "the frame's length does not fit the command",
            Fault.TIMEOUT: "the frame stopped arriving half-way",
            Fault.RANGE: "a value was out of range (activation above A, or load past the end)",
            Fault.NOT_LOADED: "the board's run-time weights are not loaded yet",
        }[self]


#: CRC-8/SMBUS over bytes: polynomial x^8 + x^2 + x + 1 (0x07), MSB first, initial value 0,
#: no final XOR. The board builds its checkers from it (``CRC8.create()``).
CRC8 = catalog.CRC8_SMBUS(data_width=8)


def crc8(data: bytes) -> int:
    return CRC8.compute(data)


def frame(sync: int, kind: int, payload: bytes = b"") -> bytes:
    body = bytes([kind]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([sync]) + body + bytes([crc8(body)])


def network_checksum(net) -> int:
    """CRC-32 of everything that defines ``net`` (its header and arrays), so that a board
    and a ``.npz`` agree exactly when they hold the same network."""
    crc = zlib.crc32(repr(sorted(net.header().items())).encode())
    for name, array in sorted(net.arrays().items()):
        array = np.ascontiguousarray(array)
        crc = zlib.crc32(f"{name}:{array.dtype.str}:{array.shape}".encode(), crc)
        crc = zlib.crc32(array.tobytes(), crc)
    return crc


def logit_bytes(bits: int) -> int:
    return (bits + 7) // 8


@dataclass(frozen=True)
class Identity:
    """What a board says about itself in its ``IDENTITY`` payload (fixed little-endian
    layout :attr:`FORMAT`)."""
    version: int
    checksum: int          # network_checksum of the loaded network
    inputs: int            # input activations per sample (a sequence's steps × features):
                           # INFER payload length
    levels: int            # A: activations are 0..A
    classes: int
    logit_bytes: int
    spiking: int           # neurons of the last spiking layer (SPIKES payload)
    load_bytes: int        # run-time weight bytes (0: all weights are in the bitstream)
    loaded: bool
    clock_hz: int

    FORMAT = "<4sBIHBBBHIBI"

    def pack(self) -> bytes:
        return struct.pack(self.FORMAT, MAGIC, self.version, self.checksum, self.inputs,
                           self.levels, self.classes, self.logit_bytes, self.spiking,
                           self.load_bytes, int(self.loaded), self.clock_hz)

    @classmethod
    def unpack(cls, payload: bytes) -> "Identity":
        if len(payload) != struct.calcsize(cls.FORMAT) or payload[:4] != MAGIC:
            raise ValueError("not a onespike board identity")
        magic, *fields = struct.unpack(cls.FORMAT, payload)
        fields[8] = bool(fields[8])
        return cls(*fields)

    @classmethod
    def of(cls, net, *, clock_hz, load_bytes=0, loaded=True):
        return cls(version=VERSION, checksum=network_checksum(net),
                   inputs=int(np.prod(net.encoder.sample_shape)), levels=net.encoder.levels,
                   classes=net.num_classes,
                   logit_bytes=logit_bytes(net.widths()[-1].membrane_bits),
                   spiking=int(np.prod(net.layers[-1].in_shape)), load_bytes=load_bytes,
                   loaded=loaded, clock_hz=int(clock_hz))


def reply_lengths(identity: Identity) -> dict:
    """Payload bytes of each board answer."""
    result = 1 + identity.classes * identity.logit_bytes
    return {Reply.IDENTITY: struct.calcsize(Identity.FORMAT), Reply.RESULT: result,
            Reply.SPIKES: result + 2 * identity.spiking, Reply.LOADED: 0, Reply.ERROR: 1}


def decode_result(payload: bytes, identity: Identity, spikes: bool = False):
    """``(class, logits, steps or None)`` from a RESULT or SPIKES payload; a neuron that did
    not fire reads :data:`~onespike.ir.NO_SPIKE` (the wire's :data:`NO_SPIKE_STEP`), as in
    :func:`onespike.sim.observed.window_steps`."""
    lb, classes = identity.logit_bytes, identity.classes
    expected = reply_lengths(identity)[Reply.SPIKES if spikes else Reply.RESULT]
    if len(payload) != expected:
        raise ValueError(f"result of {len(payload)} bytes, expected {expected}")
    logits = [int.from_bytes(payload[1 + k * lb:1 + (k + 1) * lb], "little", signed=True)
              for k in range(classes)]
    steps = None
    if spikes:
        steps = np.frombuffer(payload[1 + classes * lb:], dtype="<u2").astype(np.int64)
        steps[steps == NO_SPIKE_STEP] = NO_SPIKE
    return payload[0], logits, steps
