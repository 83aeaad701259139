"""Kill test: SIGKILL the consumer mid-stream, again and again.

A synchronous sender streams numbered messages (send_async, many in flight,
from two threads) to a consumer process that logs each number *before* it
releases (ACKs) the message.  The consumer is SIGKILLed and restarted on the
same port several times.  In the end:

- every send that succeeded is in the consumer's log (no loss without error);
- every other send failed with a chirp.ChirpError;
- every send completed, within a bounded time.

CI runs it for a few seconds.  For a soak run:

    CHIRP_SOAK_SECONDS=600 .venv/bin/python -m pytest -s tests/faults/test_faults_kill.py
"""

import collections
import os
import threading
import time

import pytest
from support.net import LOCAL
from support.waits import wait_futures, wait_until

from .kit import SendLedger, rng_for

SOAK = float(os.environ.get("CHIRP_SOAK_SECONDS", "0") or 0)
pytestmark = pytest.mark.hang_limit(120 + SOAK)  # a soak run gets its duration on top
DURATION = SOAK if SOAK > 0 else 7.0
KILLS = max(5, int(DURATION / 1.6))
SEND_TIMEOUT = 1.0


@pytest.mark.parametrize("payload", [0, 64 * 1024], ids=["small", "64KiB"])
def test_sync_sender_survives_consumer_kills(node_factory, make_consumer, payload):
    import chirp

    rng = rng_for(f"kill-{payload}")
    consumer = make_consumer("kill")
    port = consumer.port
    sender = node_factory(synchronous=True, timeout=SEND_TIMEOUT, max_inflight=16)
    # Big payloads make kills land in the middle of messages and writes.
    ledger = SendLedger(sender, (LOCAL, port), window=48, pad=payload)
    stop = threading.Event()
    crashed = []

    def produce():
        try:
            while not stop.is_set():
                ledger.send_one()
                if ledger.last_failed:
                    time.sleep(0.005)  # the consumer is down: do not spin
        except BaseException as e:  # reported by the main thread
            crashed.append(e)

    producers = [
        threading.Thread(target=produce, name=f"producer-{i}", daemon=True) for i in range(2)
    ]
    for t in producers:
        t.start()

    phase = DURATION / (KILLS + 1)
    acked_after_restart = []
    t_start = time.monotonic()
    try:
        for k in range(KILLS):
            # Traffic must flow before each kill, so the kill lands mid-stream.
            base = ledger.n_acked
            wait_until(
                lambda base=base: ledger.n_acked > base + 5 or crashed,
                15.0,
                what=f"acks after (re)start {k}",
            )
            acked_after_restart.append(ledger.n_acked - base)
            time.sleep(rng.uniform(0.3, 1.0) * phase)
            consumer.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            consumer.start()
            assert consumer.port == port
        base = ledger.n_acked
        wait_until(
            lambda: ledger.n_acked > base + 5 or crashed, 15.0, what="acks after the last restart"
        )
        time.sleep(phase)
    finally:
        stop.set()
        for t in producers:
            t.join(timeout=15)
    assert not crashed, f"producer thread failed: {crashed[0]!r}"
    assert not any(t.is_alive() for t in producers), "a producer thread hangs"

    # Every send completes: the send timeout bounds each of them.
    futs = list(ledger.futures.values())
    not_done = wait_futures(futs, timeout=3 * SEND_TIMEOUT + 10)
    assert not not_done, f"{len(not_done)} sends never completed"

    acked, failed = ledger.split()
    # The successful ones were logged before they were ACKed: read the log
    # while the consumer is still up (it may log more, never less).
    logged_list = consumer.numbers()
    logged = set(logged_list)
    lost = sorted(acked - logged)
    dup = [n for n, c in collections.Counter(logged_list).items() if c > 1]
    unknown = sorted(logged - set(ledger.futures))
    non_chirp = {n: e for n, e in failed.items() if not isinstance(e, chirp.ChirpError)}
    kinds = collections.Counter(type(e).__name__ for e in failed.values())
    failed_but_delivered = len(set(failed) & logged)

    print(
        f"\n[kill payload={payload}] duration={time.monotonic() - t_start:.1f}s "
        f"kills={consumer.kills} restarts={consumer.starts - 1}\n"
        f"[kill] sent={len(futs)} acked={len(acked)} failed={len(failed)} "
        f"lost={len(lost)} (failed but delivered={failed_but_delivered}, "
        f"logged={len(logged)})\n"
        f"[kill] failure kinds: {dict(kinds)}\n"
        f"[kill] acks seen after each restart: {acked_after_restart}"
    )
    assert consumer.kills >= 4
    assert len(acked) + len(failed) == len(futs)
    assert not lost, f"{len(lost)} acknowledged sends are not in the consumer's log: {lost[:20]}"
    assert not non_chirp, f"failures that are not ChirpError: {list(non_chirp.items())[:5]}"
    assert not dup, f"messages delivered twice: {dup[:20]}"
    assert not unknown, f"log holds numbers never sent: {unknown[:20]}"
    assert failed, "the kills should have failed some sends"
    assert len(acked) > 10 * (KILLS + 1)
