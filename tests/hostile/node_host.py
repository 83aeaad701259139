"""Hosts one chirp node in its own process for the hostile tests.

usage: python -m hostile.node_host '<json Node keyword options>'

Prints "READY <port> <pid>", then serves:
- a message with header b"echo" is answered (reply) with its own data and
  released;
- every other message is counted; with auto_release=False it is kept and
  not released until the "release" command.
Commands on stdin, one per line, each answered by one line on stdout:
  count   -> COUNT <messages counted>
  held    -> HELD <messages kept unreleased>
  release -> RELEASE <n released now>
  drain   -> DRAIN <n released now>; from now on every message is released
             as soon as it is counted
  rss     -> RSS <VmRSS in KiB>
  heap    -> HEAP <bytes in use by malloc (glibc mallinfo2), -1 if unknown>
  last    -> LAST <data_len> <header_len> <sha256 of data> (last counted message)
  quit    -> closes the node and exits
"""

import hashlib
import json
import os
import queue
import resource
import sys
import threading

import chirp

try:
    import ctypes

    class _MallInfo2(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    _libc = ctypes.CDLL(None)
    _libc.mallinfo2.restype = _MallInfo2
except (OSError, AttributeError):
    _libc = None


def heap_in_use() -> int:
    """Bytes malloc has handed out and not got back (heap + mmapped chunks)."""
    if _libc is None:
        return -1
    mi = _libc.mallinfo2()
    return mi.uordblks + mi.hblkhd


def vmrss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main() -> int:
    options = json.loads(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    options.setdefault("port", 0)
    options.setdefault("disable_encryption", True)
    options.setdefault("bind_v6", "")
    commands: queue.Queue[str] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("quit")  # the test process went away

    threading.Thread(target=read_stdin, daemon=True).start()
    with chirp.Node(**options) as node:
        auto = node.config.auto_release
        print(f"READY {node.port} {os.getpid()}", flush=True)
        count = 0
        held = []
        last = (0, 0, "")
        drain = False

        def swallow(fut) -> None:
            fut.exception()

        while True:
            try:
                msgs = node.recv_many(64, timeout=0.02)
            except chirp.ChirpTimeoutError:
                msgs = []
            for m in msgs:
                if m.header == b"echo":
                    node.reply_async(m, m.data).add_done_callback(swallow)
                    m.release()
                else:
                    count += 1
                    last = (len(m.data), len(m.header), hashlib.sha256(m.data).hexdigest())
                    if not auto and not drain:
                        held.append(m)
                    else:
                        m.release()
            while True:
                try:
                    c = commands.get_nowait()
                except queue.Empty:
                    break
                if c == "quit":
                    return 0
                elif c == "count":
                    out = f"COUNT {count}"
                elif c == "held":
                    out = f"HELD {len(held)}"
                elif c == "release":
                    out = f"RELEASE {len(held)}"
                    for m in held:
                        m.release()
                    held.clear()
                elif c == "drain":
                    out = f"DRAIN {len(held)}"
                    for m in held:
                        m.release()
                    held.clear()
                    drain = True
                elif c == "rss":
                    out = f"RSS {vmrss_kib()}"
                elif c == "heap":
                    out = f"HEAP {heap_in_use()}"
                elif c == "last":
                    out = "LAST %d %d %s" % last
                else:
                    out = f"ERROR unknown command {c!r}"
                print(out, flush=True)


if __name__ == "__main__":
    sys.exit(main())
