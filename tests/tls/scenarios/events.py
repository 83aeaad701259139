"""Connection events over TLS: a peer with a certificate from another CA
is refused (reason "tls", OpenSSL's reason in the detail) on both sides;
a good peer connects encrypted and is counted in the stats."""

import dataclasses
import time

from tls.scenario import emit, good_exchange, node, send_and_fail, to


def run(p):
    b_events, x_events, a_events = [], [], []
    with (
        node(p, "b", synchronous=True, timeout=3.0, on_event=b_events.append) as b,
        node(p["other"], "x", synchronous=True, timeout=3.0, on_event=x_events.append) as x,
        node(p, "a", synchronous=False, on_event=a_events.append) as a,
    ):
        failed = send_and_fail(x, to(b))
        good = good_exchange(a, b)
        time.sleep(0.3)  # the pumps hand the last events over
        stats = {"a": a.stats(), "b": b.stats()}
        peers = [dataclasses.asdict(pi) for pi in a.peers()]
    for pi in peers:
        pi["identity"] = pi["identity"].hex() if pi["identity"] else None

    def plain(events):
        out = []
        for e in events:
            d = dataclasses.asdict(e)
            d["identity"] = e.identity.hex() if e.identity else None
            out.append(d)
        return out

    emit(
        kind="result",
        failed=failed,
        good=good,
        b_events=plain(b_events),
        x_events=plain(x_events),
        a_events=plain(a_events),
        stats=stats,
        peers=peers,
        b_port=b.port,
    )
