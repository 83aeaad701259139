"""Wire format: round trips and byte-exact layouts against hand-computed vectors."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from support import wire

from chirp._chirp import ffi, lib


def encode_header(identity: bytes, serial: int, data_len: int, header_len: int, typ: int) -> bytes:
    h = ffi.new("ch_wire_header_t *")
    h.identity = identity
    h.serial = serial
    h.data_len = data_len
    h.header_len = header_len
    h.type = typ
    out = ffi.new("uint8_t[27]")
    lib.ch_wire_encode_header(out, h)
    return bytes(out)


def decode_header(raw: bytes) -> tuple[bytes, int, int, int, int]:
    h = ffi.new("ch_wire_header_t *")
    lib.ch_wire_decode_header(raw, h)
    return bytes(h.identity), h.serial, h.data_len, h.header_len, h.type


def test_header_layout_by_hand() -> None:
    ident = bytes(range(16))
    raw = encode_header(ident, 0x01020304, 0x0A0B0C0D, 0xBEEF, 1)
    # identity, then big-endian serial, data_len, header_len, then type
    expected = (
        b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
        b"\x01\x02\x03\x04"
        b"\x0a\x0b\x0c\x0d"
        b"\xbe\xef"
        b"\x01"
    )
    assert raw == expected
    assert len(raw) == lib.CH_HEADER_SIZE == 27


def test_ack_layout_by_hand() -> None:
    raw = encode_header(b"\xff" * 16, 7, 0, 0, lib.CH_MSG_ACK)
    assert raw == b"\xff" * 16 + b"\x00\x00\x00\x07" + b"\x00" * 6 + b"\x02"


def test_handshake_layout_by_hand() -> None:
    out = ffi.new("uint8_t[18]")
    lib.ch_wire_encode_handshake(out, 2998, b"ABCDEFGHIJKLMNOP")
    assert bytes(out) == b"\x0b\xb6" + b"ABCDEFGHIJKLMNOP"
    port = ffi.new("uint16_t *")
    ident = ffi.new("uint8_t[16]")
    lib.ch_wire_decode_handshake(b"\xff\xfe" + b"z" * 16, port, ident)
    assert port[0] == 65534 and bytes(ident) == b"z" * 16


@given(
    st.binary(min_size=16, max_size=16),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**16 - 1),
    st.integers(0, 255),
)
def test_header_round_trip(ident: bytes, serial: int, dlen: int, hlen: int, typ: int) -> None:
    raw = encode_header(ident, serial, dlen, hlen, typ)
    assert raw == wire.header(ident, serial, dlen, hlen, typ)
    assert decode_header(raw) == (ident, serial, dlen, hlen, typ)


def check(data_len: int, header_len: int, typ: int, max_size: int) -> tuple[int, str]:
    h = ffi.new("ch_wire_header_t *")
    h.data_len, h.header_len, h.type = data_len, header_len, typ
    why = ffi.new("char **")
    rc = lib.ch_wire_check_header(h, max_size, ffi.cast("const char **", why))
    return rc, (ffi.string(why[0]).decode() if rc else "")


def test_header_checks() -> None:
    assert check(10, 5, 0, 15)[0] == 0
    assert check(11, 5, 0, 15)[0] == lib.CH_EMSGSIZE
    # would wrap in 32-bit arithmetic: 0xffffffff + 2
    rc, why = check(0xFFFFFFFF, 2, 0, 100)
    assert rc == lib.CH_EMSGSIZE and "max_msg_size" in why
    assert check(0, 0, lib.CH_MSG_ACK, 100)[0] == 0
    assert check(1, 0, lib.CH_MSG_ACK, 100)[0] == lib.CH_EPROTO
    assert check(0, 1, lib.CH_MSG_NOOP, 100)[0] == lib.CH_EPROTO
    assert check(0, 0, lib.CH_MSG_NOOP | lib.CH_MSG_REQ_ACK, 100)[0] == lib.CH_EPROTO
    assert check(0, 0, lib.CH_MSG_NOOP | lib.CH_MSG_ACK, 100)[0] == lib.CH_EPROTO
    assert check(0, 0, 8, 100)[0] == lib.CH_EPROTO
    reject = lib.CH_MSG_ACK | lib.CH_MSG_REJECT  # the reason as data, up to 180 bytes
    assert check(0, 0, reject, 100)[0] == 0
    assert check(180, 0, reject, 100)[0] == 0  # not bound by max_msg_size
    assert check(181, 0, reject, 100000)[0] == lib.CH_EPROTO


def _cap(serial: int, window: int, flags: int = 0) -> bytes:
    cap = ffi.new("ch_cap_t *")
    cap.version, cap.flags, cap.window = lib.CH_CAP_VERSION, flags, window
    out = ffi.new("uint8_t[27]")
    lib.ch_wire_encode_cap(out, serial, cap)
    return bytes(out)


def _decode_cap(raw: bytes):
    h = ffi.new("ch_wire_header_t *")
    lib.ch_wire_decode_header(raw, h)
    cap = ffi.new("ch_cap_t *")
    if not lib.ch_wire_decode_cap(h, cap):
        return None
    return cap.version, cap.flags, cap.window


def test_capability_frame_layout() -> None:
    """docs/protocol.md's layout, byte for byte: a NOOP whose identity is
    the tag, version 1, flags, the window, four zero bytes."""
    raw = _cap(7, 0x1234)
    ident = b"CHIRPCAP" + bytes([1, 0, 0x12, 0x34]) + bytes(4)
    assert raw == wire.header(ident, 7, 0, 0, lib.CH_MSG_NOOP)
    assert _decode_cap(raw) == (1, 0, 0x1234)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0xFFFFFFFF))
def test_capability_frame_round_trip(window: int, flags: int, serial: int) -> None:
    raw = _cap(serial, window, flags)
    assert _decode_cap(raw) == (1, flags, max(window, 1))


def test_what_is_not_a_capability_frame() -> None:
    tag = b"CHIRPCAP" + bytes([1, 0, 0, 4]) + bytes(4)
    noop = lib.CH_MSG_NOOP
    assert _decode_cap(wire.header(tag, 1, 0, 0, lib.CH_MSG_ACK)) is None
    version0 = b"CHIRPCAP" + bytes([0, 0, 0, 4]) + bytes(4)
    assert _decode_cap(wire.header(version0, 1, 0, 0, noop)) is None
    assert _decode_cap(wire.header(b"CHIRPCAx" + tag[8:], 1, 0, 0, noop)) is None
    assert _decode_cap(wire.header(bytes(16), 1, 0, 0, noop)) is None
    assert _decode_cap(wire.header(tag, 1, 1, 0, noop)) is None  # data


def test_the_frame_carries_the_max_msg_size() -> None:
    cap = ffi.new("ch_cap_t *")
    cap.version, cap.window, cap.max_msg_size = 1, 16, 0x01020304
    out = ffi.new("uint8_t[27]")
    lib.ch_wire_encode_cap(out, 3, cap)
    assert bytes(out)[12:16] == bytes([1, 2, 3, 4])
    h = ffi.new("ch_wire_header_t *")
    lib.ch_wire_decode_header(bytes(out), h)
    back = ffi.new("ch_cap_t *")
    assert lib.ch_wire_decode_cap(h, back) and back.max_msg_size == 0x01020304
    assert bytes(out) == wire.capability(3, 16, max_msg_size=0x01020304)


def test_the_test_codec_agrees_on_the_capability_frame() -> None:
    """tests/support/wire.py writes and reads the frame as the core does."""
    assert wire.capability(9, 300, flags=5) == _cap(9, 300, flags=5)
    h = wire.decode_header(_cap(9, 0))
    assert wire.decode_capability(h.identity, h.type) == (1, 0, 1)
