"""Connections cut at chosen and at random byte offsets.

A TCP proxy sits between a synchronous sender and an asynchronous consumer
(auto_release=False, records each message before releasing it).  On the
first proxied connection it acts once a given number of bytes went one way:
closes both sides (FIN), resets both sides (RST), or stalls (forwards
nothing more, keeps both sockets open) -- in the middle of the handshake, a
message header, a payload, or an ACK.

For each case: no send succeeds without delivery, every send completes
(a stall ends in timeouts), and sends after the cut work again through a
fresh proxy connection.
"""

import collections
import time

import pytest
from support.waits import wait_futures

from .kit import Drainer, Fault, SendLedger, rng_for

pytestmark = pytest.mark.hang_limit(120)

PAYLOAD = 100  # data bytes per message
HS = 18  # handshake
FRAME_UP = 27 + PAYLOAD  # sender -> consumer: header + data
FRAME_DOWN = 27  # consumer -> sender: ACKs
N_MESSAGES = 40
SEND_TIMEOUT = 0.5

# name: (direction, action, where)
CASES = {
    "up-close-mid-handshake": ("up", "close", "handshake"),
    "up-close-mid-header": ("up", "close", "header"),
    "up-close-mid-payload": ("up", "close", "payload"),
    "up-reset-mid-header": ("up", "reset", "header"),
    "up-reset-mid-payload": ("up", "reset", "payload"),
    "up-stall-mid-header": ("up", "stall", "header"),
    "up-stall-mid-payload": ("up", "stall", "payload"),
    "down-close-mid-handshake": ("down", "close", "handshake"),
    "down-close-mid-ack": ("down", "close", "ack"),
    "down-reset-mid-ack": ("down", "reset", "ack"),
    "down-stall-mid-ack": ("down", "stall", "ack"),
    "down-stall-mid-handshake": ("down", "stall", "handshake"),
}
RANDOM_CASES = [f"random-{i}" for i in range(6)]


def make_fault(name, rng):
    if name.startswith("random"):
        direction = rng.choice(["up", "down"])
        action = rng.choice(["close", "reset", "stall"])
        frame = FRAME_UP if direction == "up" else FRAME_DOWN
        # Somewhere in the first 3/4 of what the stream will carry.
        offset = rng.randint(1, HS + (3 * N_MESSAGES // 4) * frame)
    else:
        direction, action, where = CASES[name]
        k = rng.randrange(0, N_MESSAGES // 2)
        if where == "handshake":
            offset = rng.randint(1, HS - 1)
        elif where == "header":
            offset = HS + k * FRAME_UP + rng.randint(1, 26)
        elif where == "payload":
            offset = HS + k * FRAME_UP + 27 + rng.randint(1, PAYLOAD - 1)
        else:  # ack
            offset = HS + k * FRAME_DOWN + rng.randint(1, 26)
    return Fault(direction, offset, action, label=name)


def describe(fault):
    if fault.offset < HS:
        return f"handshake byte {fault.offset}"
    frame = FRAME_UP if fault.direction == "up" else FRAME_DOWN
    k, r = divmod(fault.offset - HS, frame)
    part = "header" if r < 27 else "payload"
    kind = "message" if fault.direction == "up" else "ACK"
    return f"{kind} {k} {part} byte {r}"


@pytest.mark.parametrize("name", list(CASES) + RANDOM_CASES)
def test_cut_connection(name, node_factory, make_proxy):
    import chirp

    rng = rng_for(name)
    consumer = node_factory(synchronous=False, auto_release=False, timeout=2.0)
    rec = Drainer(consumer)
    try:
        sender = node_factory(synchronous=True, timeout=SEND_TIMEOUT)
        fault = make_fault(name, rng)
        proxy = make_proxy(consumer.port, [fault])
        ledger = SendLedger(sender, proxy.address, window=16, pad=PAYLOAD)

        t0 = time.monotonic()
        for _ in range(N_MESSAGES):
            ledger.send_one()
        not_done = wait_futures(list(ledger.futures.values()), timeout=3 * SEND_TIMEOUT + 5)
        assert not not_done, f"{len(not_done)} sends never completed"
        first_acked, first_failed = ledger.split()
        settle = time.monotonic() - t0
        assert fault.fired.is_set(), "the fault never hit: the stream was shorter than planned"

        # After the cut: a fresh proxy connection carries new sends.
        for _attempt in range(40):
            try:
                sender.send(proxy.address, ledger.payload(ledger.next))
                ledger.next += 1
                break
            except chirp.ChirpError:
                ledger.next += 1
                time.sleep(0.05)
        else:
            raise AssertionError("sends never worked again after the cut")
        tail = [ledger.send_one() for _ in range(10)]
        assert not wait_futures(tail, timeout=3 * SEND_TIMEOUT + 5)
        tail_errors = [f.exception() for f in tail if f.exception() is not None]
        assert not tail_errors, f"sends after recovery failed: {tail_errors[:3]}"
        assert proxy.accepted >= 2
    finally:
        time.sleep(0.05)
        rec.close()

    acked, failed = first_acked, first_failed
    got = collections.Counter(rec.got)
    lost = sorted(n for n in acked if n not in got)
    non_chirp = [e for e in failed.values() if not isinstance(e, chirp.ChirpError)]
    kinds = collections.Counter(type(e).__name__ for e in failed.values())
    print(
        f"\n[{name}] fault: {fault.action} {fault.direction} at byte {fault.offset} "
        f"({describe(fault)}); first {N_MESSAGES}: acked={len(acked)} failed={len(failed)} "
        f"lost={len(lost)} delivered={len(set(got) & set(range(N_MESSAGES)))} "
        f"kinds={dict(kinds)} settled in {settle:.2f}s"
    )
    assert not lost, f"acknowledged but never delivered: {lost}"
    assert not non_chirp, f"failures that are not ChirpError: {non_chirp[:3]}"
    assert failed, "a cut in the stream must fail at least the message it cut"
    assert not [n for n, c in got.items() if c > 1], "a message was delivered twice"
    if fault.action == "stall":
        assert any(isinstance(e, chirp.ChirpTimeoutError) for e in failed.values())
        # bounded: the send timeout (plus the loop's tick) ends a stall
        assert settle < 3 * SEND_TIMEOUT + 3
