"""A received message: its data and header, who sent it, and its slot."""

from __future__ import annotations

from typing import Any


class Message:
    """A received message.  ``release()`` gives its slot back to the
    connection (and sends the ACK a synchronous sender waits for)."""

    __slots__ = (
        "data",
        "header",
        "identity",
        "serial",
        "address",
        "port",
        "remote_identity",
        "ip_protocol",
        "_core",
        "_ptr",
    )

    def __init__(
        self,
        data: bytes,
        header: bytes,
        identity: bytes,
        serial: int,
        address: str,
        port: int,
        remote_identity: bytes,
        ip_protocol: int = 4,
    ) -> None:
        self.data = data
        self.header = header
        self.identity = identity
        self.serial = serial
        self.address = address
        self.port = port
        self.remote_identity = remote_identity
        self.ip_protocol = ip_protocol
        # _core and _ptr are set only for a message still in its slot
        # (auto_release off, see hold()): most messages never need them.

    def hold(self, core: Any, ptr: Any) -> None:
        """Tie the message to its slot: release() gives it back (chirp's
        receive path calls this; applications do not)."""
        self._core = core
        self._ptr = ptr

    @property
    def released(self) -> bool:
        """True once the slot was given back."""
        return getattr(self, "_ptr", None) is None

    def release(self) -> None:
        """Free the slot (and acknowledge, if asked); calling it again does nothing."""
        ptr = getattr(self, "_ptr", None)
        if ptr is None:
            return
        self._ptr = None
        self._core.release_one(ptr)

    def __enter__(self) -> Message:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"<chirp.Message from {self.address}:{self.port} serial={self.serial} "
            f"header={len(self.header)}B data={len(self.data)}B>"
        )


def as_bytes(name: str, value: Any) -> bytes:
    """bytes from a bytes-like value to send; TypeError naming the argument."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        raise TypeError(f"{name} must be bytes-like, not str (encode it first)")
    raise TypeError(f"{name} must be bytes-like, got {type(value).__name__}")
