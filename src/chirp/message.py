"""A received message: its data and header, who sent it, and its slot."""

from __future__ import annotations

from typing import Any

from ._chirp import lib


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
    def view(self) -> memoryview:
        """The data as a read-only memoryview.  For a message received
        with ``copy=False`` this is the buffer it arrived in, not a copy."""
        return memoryview(self.data).toreadonly()

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

    def reject(self, reason: str = "") -> None:
        """End the message with a failure instead of an acknowledgement,
        and free its slot.  A synchronous chirp sender's send fails with
        RejectedError carrying ``reason`` (UTF-8, cut to 180 bytes); a
        libchirp sender, which cannot be told why, gets no acknowledgement
        and its connection is closed; an asynchronous sender asked for
        nothing.  Only a message still in its slot can be rejected
        (``auto_release=False``, or a handler of ``serve``)."""
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, got {type(reason).__name__}")
        ptr = getattr(self, "_ptr", None)
        if ptr is None:
            raise ValueError(
                "cannot reject a message already released (with auto_release, "
                "a message is released as it is handed out: use auto_release=False)"
            )
        core = self._core
        if core.forked:
            raise core.closed_error()
        raw = reason.replace("\0", "?").encode()[: lib.CH_REJECT_MAX]
        raw = raw.decode(errors="ignore").encode()  # no cut UTF-8 character
        self._ptr = None
        rc = lib.ch_bridge_reject(core.b, ptr, raw)
        if rc == lib.CH_ENOMEM:  # nothing was done: at least free the slot
            core.release_one(ptr)
            raise MemoryError("no memory to reject the message: it was released")

    def __enter__(self) -> Message:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"<chirp.Message from {self.address}:{self.port} serial={self.serial} "
            f"header={len(self.header)}B data={len(self.view)}B>"
        )


class _ViewMessage(Message):
    """A message received with ``copy=False``: ``view`` is the buffer the
    data arrived in (taken from the core without a copy, and freed when
    the last view of it is gone, released or not); ``data`` copies it."""

    __slots__ = ("_view",)
    _view: memoryview

    @property
    def data(self) -> bytes:  # type: ignore[override]
        """A bytes copy of the data, made at the first access."""
        try:
            return _DATA.__get__(self)  # type: ignore[no-any-return]
        except AttributeError:
            copied = self._view.tobytes()
            _DATA.__set__(self, copied)
            return copied

    @property
    def view(self) -> memoryview:
        return self._view


_DATA: Any = Message.__dict__["data"]  # the slot, under _ViewMessage's property


def as_bytes(name: str, value: Any) -> bytes:
    """bytes from a bytes-like value to send; TypeError naming the argument."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        raise TypeError(f"{name} must be bytes-like, not str (encode it first)")
    raise TypeError(f"{name} must be bytes-like, got {type(value).__name__}")
