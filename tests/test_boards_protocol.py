"""The host-link protocol: the crc is CRC-8/SMBUS, the frame kinds and fault codes are one
set of enums for the host (plain ints) and the board's logic (8-bit shapes)."""

from amaranth.hdl import Shape

from onespike.boards import protocol as proto


def test_crc8_is_crc8_smbus_as_the_old_bitwise_definition():
    def bitwise(data):           # x^8 + x^2 + x + 1, MSB first, initial value 0
        crc = 0
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        return crc

    assert proto.crc8(b"123456789") == 0xF4         # the catalogue's check value
    for data in [b"", b"\0", bytes(range(256)), b"\xA5X\x02\x00\x07\x03"]:
        assert proto.crc8(data) == bitwise(data)


def test_enums_are_ints_for_the_host_and_bytes_for_the_board():
    for enum in (proto.Command, proto.Reply, proto.Fault):
        assert Shape.cast(enum) == Shape(8)
        assert all(isinstance(member, int) and 0 <= member < 256 for member in enum)
    assert proto.Command.INFER == ord("X") and proto.Reply.ERROR == ord("e")
    assert proto.Fault(0) is proto.Fault.NONE and proto.Fault.TIMEOUT == 6
    frame = proto.frame(proto.HOST_SYNC, proto.Command.IDENTIFY)
    assert frame == bytes([0xA5, ord("I"), 0, 0, proto.crc8(bytes([ord("I"), 0, 0]))])
    assert all(fault.describe() for fault in proto.Fault)
