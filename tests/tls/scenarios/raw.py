"""Raw TCP clients at a TLS node: garbage, half records, silence."""

import time

from support import wire
from support.raw import read_until_closed

from tls.scenario import emit, expect_nothing, good_exchange, node, raw_connect

RAW_INPUTS = {
    # not TLS at all
    "http": b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    # a plaintext chirp handshake instead of a ClientHello
    "chirp_plain": wire.handshake(1234, b"P" * 16),
    # the same from a port >= 32768 with an identity starting 0x01: OpenSSL
    # alone takes it for an SSLv2-style ClientHello announcing 7,232 bytes
    # and waits for them (the node's handshake timeout; seen once in CI)
    "chirp_plain_high_port": wire.handshake(40000, b"\x01" + b"P" * 15),
    # a handshake record full of garbage
    "bad_record": b"\x16\x03\x01\x00\x40" + bytes(range(64)),
    # a record type that does not exist
    "bad_type": b"\x63\x03\x03\x00\x05hello",
    # an oversized record length
    "huge_record": b"\x16\x03\x01\xff\xff" + b"\x00" * 100,
}


def run(p):
    """Raw bytes at a TLS node: the connection is closed, nothing delivered,
    the node still serves a good peer."""
    variant = p["variant"]
    out = {"variant": variant}
    with node(p, "b", synchronous=False, timeout=1.0) as b, node(p, "a", synchronous=False) as a:
        t0 = time.monotonic()
        s = raw_connect(b.port)
        try:
            if variant in RAW_INPUTS:
                s.sendall(RAW_INPUTS[variant])
                closed, secs, got = read_until_closed(s, 5)
                out.update(closed=closed, secs=secs, replied=got.hex()[:80])
            elif variant == "half_header_close":
                # 3 bytes of a ClientHello record header, then close
                s.sendall(b"\x16\x03\x01")
                time.sleep(0.1)
                s.close()
            elif variant == "short_record_close":
                # a record that announces 1000 bytes, 10 of them, then close
                s.sendall(b"\x16\x03\x01\x03\xe8" + b"\x01" * 10)
                time.sleep(0.1)
                s.close()
            elif variant == "half_header_stall":
                s.sendall(b"\x16\x03\x01")
                closed, secs, got = read_until_closed(s, 6)
                out.update(closed=closed, secs=secs, replied=got.hex()[:80])
            elif variant == "short_record_stall":
                s.sendall(b"\x16\x03\x01\x03\xe8" + b"\x01" * 10)
                closed, secs, got = read_until_closed(s, 6)
                out.update(closed=closed, secs=secs, replied=got.hex()[:80])
            elif variant == "silent":
                # several clients that connect and never speak; a good peer
                # is served while they hang, then they are all closed
                others = [raw_connect(b.port) for _ in range(9)]
                try:
                    t1 = time.monotonic()
                    out["good_during"] = good_exchange(a, b, data=b"during")
                    out["good_during_secs"] = time.monotonic() - t1
                    # seconds from opening to being closed by the node
                    results = [read_until_closed(c, 8, since=t0) for c in [s] + others]
                finally:
                    for c in others:
                        c.close()
                out["closed"] = all(r[0] for r in results)
                out["n_closed"] = sum(1 for r in results if r[0])
                out["secs"] = max(r[1] for r in results)
                out["min_secs"] = min(r[1] for r in results)
                out["replied"] = "".join(r[2].hex() for r in results)[:80]
            else:
                raise SystemExit(f"unknown variant {variant}")
        finally:
            s.close()
        out["total_secs"] = time.monotonic() - t0
        out["nothing_delivered"] = expect_nothing(b, wait=0.3)
        out["good_after"] = good_exchange(a, b)
    emit(kind="result", **out)
