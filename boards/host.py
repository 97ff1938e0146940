"""The host side of the UART link (pyserial): ``onespike run``."""

import struct
import time

import numpy as np

from onespike.boards import protocol as proto
from onespike.errors import OnespikeError

__all__ = ["BoardClient", "run_inputs"]


class BoardClient:
    """Frames to and from a board on a serial port. A reply that arrives corrupt, or a
    CHECKSUM answer (the board got a corrupt frame), is retried up to ``retries`` times."""

    def __init__(self, port, *, baud, timeout=2.0, retries=2):
        import serial

        self.port_name, self.timeout, self.retries = port, timeout, retries
        self.retried = 0
        try:
            self.port = serial.serial_for_url(port, baudrate=baud, timeout=0.05)  # polls
        except (serial.SerialException, ValueError, OSError) as e:
            raise OnespikeError(f"cannot open serial port {port}: {e}; is the board plugged "
                                f"in? (its port is usually /dev/ttyUSB1 or /dev/ttyACM0)") from None

    def close(self):
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self, size, deadline):
        data = bytearray()
        while len(data) < size:
            if time.monotonic() > deadline:
                return None
            data += self.port.read(size - len(data))
        return bytes(data)

    def _reply(self, timeout):
        """One board frame: (kind, payload); None after ``timeout`` s of silence; raises
        ValueError on a corrupt frame."""
        deadline = time.monotonic() + timeout
        while True:
            first = self._read(1, deadline)
            if first is None:
                return None
            if first[0] == proto.BOARD_SYNC:
                break
        head = self._read(3, deadline)
        if head is None:
            raise ValueError("frame cut short")
        size = struct.unpack("<H", head[1:])[0]
        rest = self._read(size + 1, deadline)
        if rest is None:
            raise ValueError("frame cut short")
        if proto.crc8(head + rest[:-1]) != rest[-1]:
            raise ValueError("bad checksum")
        return head[0], rest[:-1]

    def request(self, command, payload=b""):
        for _ in range(self.retries + 1):
            self.port.reset_input_buffer()
            self.port.write(proto.frame(proto.HOST_SYNC, command, payload))
            self.port.flush()
            try:
                answer = self._reply(self.timeout)
            except ValueError:
                self._resync()
                self.retried += 1
                continue
            if answer is None:
                raise OnespikeError(
                    f"no answer from the board on {self.port_name} within {self.timeout:g} s: "
                    f"is the onespike bitstream loaded and the baud rate "
                    f"{self.port.baudrate} (as built)?")
            kind, body = answer
            if kind == proto.Reply.ERROR:
                fault = proto.Fault(body[0]) if body and body[0] in set(proto.Fault) else None
                if fault in (proto.Fault.CHECKSUM, proto.Fault.FRAMING, proto.Fault.TIMEOUT,
                             proto.Fault.OVERRUN):
                    self._resync()
                    self.retried += 1
                    continue
                raise OnespikeError(f"the board refused the frame: "
                                    f"{fault.describe() if fault else body!r}")
            return kind, body
        raise OnespikeError(f"the link to {self.port_name} keeps corrupting frames "
                            f"({self.retries + 1} attempts); check the cable and baud rate")

    def _resync(self):
        """Let a half-sent frame time out on the board and drop whatever it answers."""
        time.sleep(0.1)
        while True:
            try:
                if self._reply(0.2) is None:
                    return
            except ValueError:
                pass

    def identify(self) -> proto.Identity:
        kind, body = self.request(proto.Command.IDENTIFY)
        try:
            if kind != proto.Reply.IDENTITY:
                raise ValueError
            return proto.Identity.unpack(body)
        except ValueError:
            raise OnespikeError(f"the device on {self.port_name} is not a onespike board "
                                f"(it answered {bytes([kind]) + body!r})") from None

    def infer(self, activations, identity, *, spikes=False):
        command = proto.Command.INFER_SPIKES if spikes else proto.Command.INFER
        kind, body = self.request(command, bytes(int(v) for v in activations))
        expected = proto.Reply.SPIKES if spikes else proto.Reply.RESULT
        if kind != expected:
            raise OnespikeError(f"the board answered {kind:#x} to an inference")
        return proto.decode_result(body, identity, spikes=spikes)

    def load(self, image: bytes, progress=None):
        for start in range(0, len(image), proto.MAX_LOAD_CHUNK):
            chunk = image[start:start + proto.MAX_LOAD_CHUNK]
            kind, _ = self.request(proto.Command.LOAD, struct.pack("<I", start) + chunk)
            if kind != proto.Reply.LOADED:
                raise OnespikeError(f"the board answered {kind:#x} to a weight load")
            if progress:
                progress(len(chunk))


def _flat_samples(a0, net, identity) -> np.ndarray:
    """``a0`` as one row of activations per sample (a sequence's steps one after the other,
    as the board takes them), refused in one line when its samples are not the network's:
    of another size, or (with ``net``) sequences of another length."""
    a0 = np.asarray(a0)
    shape = a0.shape[1:]
    sequence = net is not None and net.steps is not None
    takes = f"{identity.inputs} values per sample"
    if sequence:
        takes = f"sequences {tuple(net.encoder.sample_shape)} (steps, features...), {takes}"
    if a0.ndim < 2 or (sequence and a0.ndim > 2 and shape[0] != net.steps) or \
            int(np.prod(shape)) != identity.inputs:
        raise OnespikeError(f"inputs have shape {shape} per sample ({int(np.prod(shape))} "
                            f"values); the board's network takes {takes}")
    return a0.reshape(len(a0), -1)


def run_inputs(client: BoardClient, a0, *, net=None, weights=None, spikes=False,
               progress=True) -> dict:
    """Stream integer activations ``a0`` (samples, inputs), or for a sequence network
    (samples, steps, features...), one ``INFER`` frame a sample, to a board; checks the board
    holds ``net`` (when given), loads its run-time ``weights`` (the build's load image) if
    it has not got them yet, and compares every answer with the golden model."""
    from tqdm import tqdm

    identity = client.identify()
    if net is not None and identity.checksum != proto.network_checksum(net):
        raise OnespikeError(f"the board holds another network (checksum "
                            f"{identity.checksum:08x}, this one is "
                            f"{proto.network_checksum(net):08x}); build and load its bitstream "
                            f"with `onespike build`")
    a0 = _flat_samples(a0, net, identity)
    if a0.min() < 0 or a0.max() > identity.levels:
        raise OnespikeError(f"activations must be integers 0..{identity.levels}; pass the "
                            f"network (--net) to encode float inputs")
    loaded_now = 0
    if not identity.loaded:
        if weights is None:
            raise OnespikeError("the board keeps weights in RAM that a bitstream cannot "
                                "fill; pass --build DIR (its weights.bin) to load them")
        if len(weights) != identity.load_bytes:
            raise OnespikeError(f"the board expects {identity.load_bytes} weight bytes, the "
                                f"build's weights.bin has {len(weights)}: another build?")
        with tqdm(total=len(weights), desc="loading weights", unit="B", unit_scale=True,
                  disable=not progress, leave=False) as bar:
            client.load(weights, progress=bar.update)
        identity = client.identify()
        if not identity.loaded:
            raise OnespikeError("the board did not take the weights (still not loaded)")
        loaded_now = len(weights)
    classes, logits, steps = [], [], []
    started = time.monotonic()
    for a in tqdm(a0, desc="inferences", unit="sample", disable=not progress, leave=False):
        cls, lg, st = client.infer(a, identity, spikes=spikes)
        classes.append(cls), logits.append(lg), steps.append(st)
    seconds = time.monotonic() - started
    result = {"samples": len(a0), "classes": [int(c) for c in classes],
              "logits": [[int(v) for v in lg] for lg in logits],
              "seconds": round(seconds, 3),
              "samples_per_second": round(len(a0) / seconds, 2) if seconds else None,
              "retries": client.retried, "checksum": f"{identity.checksum:08x}",
              "weights_loaded_bytes": loaded_now,
              "clock_mhz": identity.clock_hz / 1e6, "golden_mismatches": None}
    if spikes:
        result["steps"] = [[int(v) for v in st] for st in steps]
    if net is not None:
        from onespike.sim import closed_form
        from onespike.sim.observed import window_steps

        golden = closed_form(net, a0.reshape((len(a0),) + tuple(net.encoder.sample_shape)))
        bad = (golden.classes != np.array(classes)) | \
            (golden.logits != np.array(logits)).any(axis=1)
        if spikes:
            expected = window_steps(net, golden.times[-1], -1).reshape(len(a0), -1)
            bad |= (expected != np.array(steps)).any(axis=1)
        result["golden_mismatches"] = int(bad.sum())
    return result
