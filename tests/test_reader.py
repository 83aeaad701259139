"""The incremental reader, fed one stream in every possible split."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from support import wire

from chirp._chirp import ffi, lib


def header(ident: bytes, serial: int, data: bytes, hdr: bytes, typ: int = 0) -> bytes:
    return wire.header(ident, serial, len(data), len(hdr), typ)


def parse(chunks: list[bytes], max_size: int = 1 << 20) -> list[tuple]:
    """Feed chunks to a reader; return what it reported, in order."""
    r = ffi.new("ch_reader_t *")
    lib.ch_reader_init(r, max_size)
    used = ffi.new("size_t *")
    events: list[tuple] = []
    keep = []
    payload = None
    for chunk in chunks:
        buf = ffi.from_buffer("uint8_t[]", chunk) if chunk else ffi.new("uint8_t[1]")
        pos = 0
        while True:
            ev = lib.ch_reader_feed(r, buf + pos, len(chunk) - pos, used)
            pos += used[0]
            if ev == lib.CH_RD_MORE:
                assert pos == len(chunk)
                break
            if ev == lib.CH_RD_HANDSHAKE:
                events.append(("hs", r.hs_port, bytes(r.hs_identity)))
            elif ev == lib.CH_RD_HEADER:
                n = r.payload_len
                payload = ffi.new("uint8_t[]", max(n, 1))
                keep.append(payload)
                lib.ch_reader_set_payload(r, payload)
            elif ev == lib.CH_RD_MESSAGE:
                h = r.hdr
                raw = ffi.buffer(payload, h.header_len + h.data_len)[:]
                events.append(
                    ("msg", bytes(h.identity), h.serial, raw[: h.header_len], raw[h.header_len :])
                )
            elif ev == lib.CH_RD_CONTROL:
                cap = ffi.new("ch_cap_t *")
                if lib.ch_wire_decode_cap(ffi.addressof(r, "hdr"), cap):
                    events.append(("cap", cap.version, cap.flags, cap.window))
                else:
                    events.append(("ctl", bytes(r.hdr.identity), r.hdr.type))
            elif ev == lib.CH_RD_REJECT:
                reason = ffi.buffer(r.reason, r.hdr.data_len)[:]
                events.append(("rej", bytes(r.hdr.identity), reason))
            elif ev == lib.CH_RD_ERROR:
                events.append(("err", r.error))
                return events
    return events


def stream() -> tuple[bytes, list[tuple]]:
    hs = wire.handshake(2998, b"N" * 16)
    parts = [hs, wire.capability(1, 16)]
    expected: list[tuple] = [("hs", 2998, b"N" * 16), ("cap", 1, 0, 16)]
    msgs = [
        (b"a" * 16, 1, b"", b""),
        (b"b" * 16, 2, b"hello", b"hd"),
        (b"c" * 16, 3, bytes(range(256)) * 3, b""),
    ]
    for ident, serial, data, hdr in msgs:
        parts.append(header(ident, serial, data, hdr) + hdr + data)
        expected.append(("msg", ident, serial, hdr, data))
    parts.append(header(b"d" * 16, 4, b"", b"", lib.CH_MSG_ACK))
    expected.append(("ctl", b"d" * 16, lib.CH_MSG_ACK))
    parts.append(header(b"e" * 16, 5, b"", b"", lib.CH_MSG_NOOP))
    expected.append(("ctl", b"e" * 16, lib.CH_MSG_NOOP))
    # The tag with version 0 is not a capability frame: a plain NOOP.
    not_cap = b"CHIRPCAP" + bytes([0, 0, 0, 9]) + bytes(4)
    parts.append(header(not_cap, 5, b"", b"", lib.CH_MSG_NOOP))
    expected.append(("ctl", not_cap, lib.CH_MSG_NOOP))
    reject = lib.CH_MSG_ACK | lib.CH_MSG_REJECT
    parts.append(header(b"g" * 16, 6, b"no: bad data", b"", reject) + b"no: bad data")
    expected.append(("rej", b"g" * 16, b"no: bad data"))
    parts.append(header(b"h" * 16, 6, b"", b"", reject))  # no reason given
    expected.append(("rej", b"h" * 16, b""))
    parts.append(header(b"f" * 16, 6, b"tail", b"", lib.CH_MSG_REQ_ACK) + b"tail")
    expected.append(("msg", b"f" * 16, 6, b"", b"tail"))
    return b"".join(parts), expected


def test_whole_stream() -> None:
    data, expected = stream()
    assert parse([data]) == expected


def test_every_single_split_point() -> None:
    data, expected = stream()
    for i in range(len(data) + 1):
        assert parse([data[:i], data[i:]]) == expected, i


def test_byte_by_byte() -> None:
    data, expected = stream()
    assert parse([bytes([b]) for b in data]) == expected


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_splits(draw: st.DataObject) -> None:
    data, expected = stream()
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=40)))
    chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)], strict=False)]
    assert parse(chunks) == expected


def test_oversize_and_bad_control_are_errors() -> None:
    hs = wire.handshake(1, b"x" * 16)
    big = wire.header(b"a" * 16, 1, 101, 0)
    assert parse([hs + big], max_size=100)[-1] == ("err", lib.CH_EMSGSIZE)
    ack = wire.header(b"a" * 16, 1, 1, 0, lib.CH_MSG_ACK)
    assert parse([hs + ack])[-1] == ("err", lib.CH_EPROTO)
    wrap = wire.header(b"a" * 16, 1, 0xFFFFFFFF, 0xFFFF)
    assert parse([hs + wrap], max_size=0xFFFFFFFF)[-1] == ("err", lib.CH_EMSGSIZE)


def between_messages(frames: list[tuple[bytes, tuple]], draw) -> None:
    """Each frame (its bytes, what the reader should report) followed by a
    message, after a handshake, cut at random places: the reader reports
    exactly those, in order."""
    parts, expected = [wire.handshake(1, b"h" * 16)], [("hs", 1, b"h" * 16)]
    for i, (raw, event) in enumerate(frames):
        parts.append(raw)
        expected.append(event)
        data = b"m%d" % i
        parts.append(header(b"i" * 16, 2 * i + 2, data, b"") + data)
        expected.append(("msg", b"i" * 16, 2 * i + 2, b"", data))
    raw = b"".join(parts)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(raw)), max_size=20)))
    chunks = [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)], strict=False)]
    assert parse(chunks) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 0xFFFF), st.integers(1, 255), st.integers(0, 255)),
        min_size=1,
        max_size=5,
    ),
    st.data(),
)
def test_capability_frames_in_any_split(caps: list[tuple[int, int, int]], draw) -> None:
    """Capability frames of any window, version >= 1 and flags, between
    messages, in any fragmentation: each is reported as a capability (a
    window of 0 read as 1), and the messages around them are intact."""
    frames = [
        (
            wire.capability(2 * i + 1, window, version, flags),
            ("cap", version, flags, max(window, 1)),
        )
        for i, (window, version, flags) in enumerate(caps)
    ]
    between_messages(frames, draw)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=180), min_size=1, max_size=4),
    st.data(),
)
def test_reject_frames_in_any_split(reasons: list[bytes], draw) -> None:
    """Reject frames (ACK | REJECT, the reason as data, up to 180 bytes)
    between messages, in any fragmentation: each is reported with its
    reason, and the messages around them are intact."""
    reject = lib.CH_MSG_ACK | lib.CH_MSG_REJECT
    frames = [
        (
            header(bytes([i]) * 16, 2 * i + 1, reason, b"", reject) + reason,
            ("rej", bytes([i]) * 16, reason),
        )
        for i, reason in enumerate(reasons)
    ]
    between_messages(frames, draw)


def test_bad_reject_frames_are_protocol_errors() -> None:
    hs = wire.handshake(1, b"x" * 16)
    rej = lib.CH_MSG_REJECT
    for typ, data_len, header_len in [
        (rej, 0, 0),  # REJECT without ACK
        (rej | lib.CH_MSG_ACK | lib.CH_MSG_REQ_ACK, 0, 0),
        (rej | lib.CH_MSG_NOOP, 0, 0),
        (rej | lib.CH_MSG_ACK, 181, 0),  # a reason too long
        (rej | lib.CH_MSG_ACK, 3, 2),  # with a header
    ]:
        bad = wire.header(b"a" * 16, 1, data_len, header_len, typ)
        assert parse([hs + bad])[-1] == ("err", lib.CH_EPROTO), (typ, data_len, header_len)
