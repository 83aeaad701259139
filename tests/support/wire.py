"""chirp's wire format, encoded and decoded by hand (docs/protocol.md).

All integers are big-endian:

  handshake  = uint16 listening port, 16-byte node identity          (18 bytes)
  msg header = 16-byte message identity, uint32 serial, uint32 data_len,
               uint16 header_len, uint8 type                         (27 bytes)

followed by header_len bytes of header, then data_len bytes of data.  The
type bits: REQ_ACK asks for an acknowledgement, ACK is one (no header, no
data), NOOP is an idle probe (no header, no data, no REQ_ACK).  A chirp
node writes a capability frame right after its handshake: a NOOP whose
identity is the tag CHIRPCAP, version, flags, the window (uint16) and the
max_msg_size (uint32, 0: not told).

This module does not import chirp: the tests use it to speak the protocol
without the implementation under test.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

REQ_ACK, ACK, NOOP = 1, 2, 4

HANDSHAKE = struct.Struct(">H16s")
HEADER = struct.Struct(">16sIIHB")
HANDSHAKE_SIZE = HANDSHAKE.size
HEADER_SIZE = HEADER.size
assert (HANDSHAKE_SIZE, HEADER_SIZE) == (18, 27)


CAP_TAG = b"CHIRPCAP"
CAP_REJECT = 1  # capability flag: the node reads reject frames (ACK | REJECT)
REJECT = 8


class Header(NamedTuple):
    identity: bytes
    serial: int
    data_len: int
    header_len: int
    type: int


def new_identity() -> bytes:
    """A random 16-byte identity."""
    return os.urandom(16)


def handshake(port: int, identity: bytes | None = None) -> bytes:
    """The 18-byte handshake: listening port and node identity (random if None)."""
    return HANDSHAKE.pack(port, new_identity() if identity is None else identity)


def decode_handshake(raw: bytes) -> tuple[int, bytes]:
    """(port, identity) of an 18-byte handshake."""
    return HANDSHAKE.unpack(raw)


def header(
    identity: bytes | None, serial: int, data_len: int, header_len: int, type: int = 0
) -> bytes:
    """A 27-byte message header (the identity is random if None).  The
    lengths are written as given, so a test can announce any length."""
    ident = new_identity() if identity is None else identity
    return HEADER.pack(ident, serial, data_len, header_len, type)


def decode_header(raw: bytes) -> Header:
    return Header(*HEADER.unpack(raw))


def message(
    identity: bytes | None, serial: int, data: bytes, header_bytes: bytes = b"", type: int = 0
) -> bytes:
    """A whole message: its header, then header_bytes, then data."""
    return header(identity, serial, len(data), len(header_bytes), type) + header_bytes + data


def ack(identity: bytes, serial: int = 1) -> bytes:
    """The acknowledgement of the message with this identity."""
    return header(identity, serial, 0, 0, ACK)


def capability(
    serial: int, window: int, version: int = 1, flags: int = 0, max_msg_size: int = 0
) -> bytes:
    """A capability frame announcing a window (as a chirp node writes it)."""
    ident = CAP_TAG + bytes([version, flags]) + struct.pack(">HI", window, max_msg_size)
    return header(ident, serial, 0, 0, NOOP)


def capability_max_msg_size(identity: bytes) -> int:
    """The max_msg_size a capability frame's identity announces (0: none)."""
    return struct.unpack(">I", identity[12:16])[0]


def decode_capability(identity: bytes, type: int) -> tuple[int, int, int] | None:
    """(version, flags, window) if a frame of this identity and type is a
    capability frame, else None (a window of 0 is read as 1)."""
    if type != NOOP or identity[:8] != CAP_TAG or identity[8] < 1:
        return None
    (window,) = struct.unpack(">H", identity[10:12])
    return identity[8], identity[9], max(window, 1)


def parse_stream(
    raw: bytes, capabilities: bool = False
) -> tuple[tuple[int, bytes] | tuple[None, None], list[dict]]:
    """What a node wrote on one connection: ((port, identity) of its
    handshake, [complete messages]).  Each message is a dict with identity,
    serial, type, header and data; an incomplete tail is left out, and so
    are capability frames unless capabilities is set."""
    if len(raw) < HANDSHAKE_SIZE:
        return (None, None), []
    hs = decode_handshake(raw[:HANDSHAKE_SIZE])
    out, pos = [], HANDSHAKE_SIZE
    while pos + HEADER_SIZE <= len(raw):
        h = decode_header(raw[pos : pos + HEADER_SIZE])
        body = pos + HEADER_SIZE
        end = body + h.header_len + h.data_len
        if end > len(raw):
            break
        if not capabilities and decode_capability(h.identity, h.type) is not None:
            pos = end
            continue
        out.append(
            dict(
                identity=h.identity,
                serial=h.serial,
                type=h.type,
                header=raw[body : body + h.header_len],
                data=raw[body + h.header_len : end],
            )
        )
        pos = end
    return hs, out
