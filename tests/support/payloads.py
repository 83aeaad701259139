"""Deterministic payloads, so that a receiver (in any process, with any
chirp or libchirp) can check what it got without being sent the original.

This module does not import chirp; the libchirp peer imports it too.
"""

from __future__ import annotations

import hashlib

_BLOCK = 4096


def pattern(size: int, seed: int = 0) -> bytes:
    """size non-trivial bytes; seeds that differ mod 256 give different bytes
    at every offset."""
    if size <= 0:
        return b""
    block = bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(_BLOCK))
    return (block * (size // _BLOCK + 1))[:size]


def numbered(i: int, size: int = 16) -> bytes:
    """A payload that starts with the decimal number i (10 digits)."""
    head = b"%010d" % i
    if size <= len(head):
        return head
    return head + pattern(size - len(head), seed=i)


def number_of(data) -> int | None:
    """The number a numbered() payload starts with, or None."""
    head = bytes(data[:10])
    if len(head) == 10 and head.isdigit():
        return int(head)
    return None


def digest_payload(i: int, size: int, kind: bytes = b"D") -> bytes:
    """Message i's bytes as the libchirp peer makes them (kind b"D" for
    data, b"H" for the header): sha256(kind:i), repeated."""
    if size <= 0:
        return b""
    block = hashlib.sha256(kind + b":%d" % i).digest()
    return (block * (size // len(block) + 1))[:size]


def sha256(data) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()
