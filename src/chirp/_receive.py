"""Receiving: messages taken from the core, and the Message objects and
bytes made of them (copied out in batches, or, with copy=False, handed
over in the buffer they arrived in).  A base of Core (_core.py), apart
so that the glue stays one module of its size."""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._chirp import ffi, lib
from ._limits import BATCH, SLICE_MS
from .errors import ChirpTimeoutError, ClosedError
from .message import Message, _ViewMessage

_BIG_BATCH = 1  # messages too big for the copy buffer taken at once
COPY_BUF = 256 * 1024  # per receiving thread; bigger messages skip the copy path
_META = struct.Struct("=6I")  # ch_msg_meta_t: offset serial data_start data_end port flags
_SAME_SOURCE = lib.CH_META_SAME_SOURCE
_HEADER = lib.CH_META_HEADER
_new_message = Message.__new__
_new_view = _ViewMessage.__new__


def slice_ms(deadline: float | None) -> int:
    """Milliseconds to wait in C before looking again (deadline or Ctrl-C)."""
    if deadline is None:
        return SLICE_MS
    return max(0, min(SLICE_MS, int((deadline - time.monotonic()) * 1000 + 0.999)))


class Receiver:
    """What a Core does to receive; the attributes are Core's."""

    b: Any  # the bridge
    local: Any  # per-thread C buffers (_core._Scratch)
    inbox: deque[Message]  # messages a batch brought that were not asked for yet
    closing: bool
    forked: bool
    auto_release: bool
    fd_used: bool

    closed_error: Callable[[], ClosedError]  # Core's
    _address: Callable[[int, bytes], str]  # AddressBook's

    def make_message(self, p: Any) -> Message:
        """A Message from a message still in its slot (the pointer path)."""
        m = _new_message(Message)
        dl = p.data_len
        m.data = ffi.buffer(p.data, dl)[:] if dl else b""
        return self._fill(m, p)

    def make_view_message(self, p: Any) -> Message:
        """A Message whose data stays in the buffer it arrived in (recv
        with copy=False): a big message's buffer is taken over from the
        core and freed when the last view of it is gone; a small one lives
        in its slot, so its data is copied."""
        hl, dl = p.header_len, p.data_len
        m = _new_view(_ViewMessage)
        base = lib.ch_message_take_buffer(p)
        if base == ffi.NULL:
            m._view = memoryview(ffi.buffer(p.data, dl)[:] if dl else b"").toreadonly()
        else:
            # The buffer object keeps the owner alive, and every view of
            # it (slices too) the buffer object: freed with the last one.
            owner = ffi.gc(ffi.cast("uint8_t *", base), lib.ch_message_buffer_free, hl + dl)
            m._view = memoryview(ffi.buffer(owner, hl + dl))[hl:].toreadonly()
        return self._fill(m, p)

    def _fill(self, m: Message, p: Any) -> Message:
        """Everything but the data, copied from a message in its slot."""
        hl = p.header_len
        proto = p.ip_protocol
        m.header = ffi.buffer(p.header, hl)[:] if hl else b""
        m.identity = ffi.buffer(p.identity, 16)[:]
        m.serial = p.serial
        m.address = self._address(proto, ffi.buffer(p.address, 16 if proto == 6 else 4)[:])
        m.port = p.port
        m.remote_identity = ffi.buffer(p.remote_identity, 16)[:]
        m.ip_protocol = proto
        return m

    def _take(self, call: Any, deadline: float | None, timeout: float | None) -> int:
        """Run call(wait_ms) until it returns messages (> 0) or 0; raises
        ClosedError, or ChirpTimeoutError at the deadline.  -1: another
        thread left messages in the inbox."""
        while True:
            if self.closing:
                raise self.closed_error()
            n: int = call(slice_ms(deadline))
            if n >= 0:
                return n
            if n == lib.CH_ECLOSED:
                raise ClosedError("node is closed")
            if self.inbox:
                return -1
            if deadline is not None and time.monotonic() >= deadline:
                raise ChirpTimeoutError(f"no message within {timeout} s")

    def _take_max(self, max_count: int) -> int:
        """How many messages to take from the core at once: a whole batch
        (the rest waits in the inbox for the next recv), but no more than
        asked for once fileno() is in use, so that the fd tells the truth."""
        return min(max_count, BATCH) if self.fd_used else BATCH

    def from_inbox(self, max_count: int) -> list[Message]:
        """Up to max_count messages a batch before left here (no waiting)."""
        out: list[Message] = []
        inbox = self.inbox
        while inbox and len(out) < max_count:
            try:
                out.append(inbox.popleft())
            except IndexError:  # another thread took the last one
                break
        return out

    def recv_many(
        self, max_count: int, timeout: float | None, held: bool = False, copy: bool = True
    ) -> list[Message]:
        """Up to max_count messages; waits up to timeout for the first one.
        held: each keeps its slot until released, whatever auto_release
        says (a handler replies first).  copy=False: big messages' data
        stays in the buffer it arrived in (make_view_message)."""
        out = self.from_inbox(max_count)
        if out:
            return out
        deadline = None if timeout is None else time.monotonic() + timeout
        release = self.auto_release and not held
        if release and copy:
            got = self._recv_copied(max_count, deadline, timeout)
            if got is not None:
                return got
        arr = self.local.ptrs
        # With auto_release and copies this path is taken only for
        # messages too big for the copy buffer: one at a time (a few
        # megabytes of copies freed together make the C allocator give the
        # memory back to the system, and the next copies fault it in again
        # page by page: a 1 MiB stream into recv_many ran at half the rate
        # with 4 here).  Without copies, no more than asked for.
        if not copy:
            most = min(max_count, BATCH)
        else:
            most = min(max_count, _BIG_BATCH) if release else self._take_max(max_count)
        n = self._take(lambda wait: lib.ch_bridge_recv(self.b, arr, most, wait), deadline, timeout)
        if n <= 0:  # another thread left messages for us
            return self.recv_many(max_count, 0, held, copy)
        make = self.make_message if copy else self.make_view_message
        msgs = [make(arr[i]) for i in range(n)]
        if release:
            lib.ch_bridge_release(self.b, arr, n)  # does nothing once closed
        else:
            for i in range(n):
                msgs[i].hold(self, arr[i])
        if n > max_count:
            self.inbox.extend(msgs[max_count:])
            del msgs[max_count:]
        return msgs

    def _recv_copied(
        self, max_count: int, deadline: float | None, timeout: float | None
    ) -> list[Message] | None:
        """Auto-release receive: C copies a batch into one buffer and gives
        the slots back at once, so the connection refills while Python
        builds the messages.  None: the next message is too big for the
        buffer; take it through the pointer path."""
        local = self.local
        meta, buf, fb, fmeta = local.copy_buffers()
        used = local.used
        n = self._take(
            lambda wait: lib.ch_bridge_recv_copy(
                self.b, meta, self._take_max(max_count), buf, COPY_BUF, wait, used
            ),
            deadline,
            timeout,
        )
        if n == 0:  # too big to copy here
            return None
        if n < 0:  # another thread left messages for us
            return self.recv_many(max_count, 0, False)
        raw = _batch_bytes(fb, used[0], n)
        address = self._address
        msgs: list[Message] = []
        append = msgs.append
        addr: Any = None
        rid: Any = None
        # The attributes set one by one on a bare instance: no __init__
        # frame per message (about 15% of building a batch of 64 B ones).
        new = _new_message
        proto = 4
        for off, serial, ds, de, port, flags in _META.iter_unpack(fmeta[0 : n * _META.size]):
            if not flags & _SAME_SOURCE:
                proto = flags & 0xFF
                rid = raw[off + 16 : off + 32]
                addr = address(proto, raw[off + 32 : off + (48 if proto == 6 else 36)])
            m = new(Message)
            m.data = raw[ds:de]
            m.header = raw[off + 48 : ds] if flags & _HEADER else b""
            m.identity = raw[off : off + 16]
            m.serial = serial
            m.address = addr
            m.port = port
            m.remote_identity = rid
            m.ip_protocol = proto
            append(m)
        if n > max_count:
            self.inbox.extend(msgs[max_count:])
            del msgs[max_count:]
        return msgs

    def recv_data(self, max_count: int, timeout: float | None) -> list[bytes]:
        """The data of up to max_count messages, each released as it is
        handed out; waits up to timeout for the first.  C copies the data
        alone, back to back, and Python cuts it at the ends C gives."""
        if self.inbox:  # what a recv_many before left: its Messages' data
            msgs = self.from_inbox(max_count)
            if msgs:
                return _data_of(msgs)
        deadline = None if timeout is None else time.monotonic() + timeout
        local = self.local
        meta, buf, fb, fmeta = local.copy_buffers()
        ends = ffi.cast("uint32_t *", meta)  # BATCH metas hold 6 * BATCH ends
        used = local.used
        most = min(max_count, BATCH)
        n = self._take(
            lambda wait: lib.ch_bridge_recv_data(self.b, ends, most, buf, COPY_BUF, wait, used),
            deadline,
            timeout,
        )
        if n < 0:  # another thread left messages in the inbox
            return self.recv_data(max_count, 0)
        if n == 0:  # too big for the buffer: as a Message
            try:
                msgs = self.recv_many(1, 0)
            except ChirpTimeoutError:  # another thread took it: wait again
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                return self.recv_data(max_count, left)
            return _data_of(msgs)
        raw = _batch_bytes(fb, used[0], n)
        out: list[bytes] = []
        append = out.append
        start = 0
        for stop in memoryview(fmeta).cast("I")[0:n].tolist():
            append(raw[start:stop])
            start = stop
        return out

    def release_one(self, ptr: Any) -> None:
        """Give one message's slot back (does nothing once closed)."""
        if self.forked:
            raise self.closed_error()
        one = self.local.one
        one[0] = ptr
        lib.ch_bridge_release(self.b, one, 1)


def _batch_bytes(fb: Any, end: int, n: int) -> Any:
    """What a batch of n messages copied into fb[0:end] is sliced from:
    small messages, one bytes copy of the batch and then cheap bytes
    slices; big ones, fb itself (each slice is then their only copy)."""
    return fb[0:end] if end <= n * 4096 else fb


def _data_of(msgs: list[Message]) -> list[bytes]:
    """recv_data from Messages: their data, each released (held ones,
    with auto_release off; for the others release() does nothing)."""
    for m in msgs:
        m.release()
    return [m.data for m in msgs]
