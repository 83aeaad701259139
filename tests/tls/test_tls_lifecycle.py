"""TLS connections over their life: racing connections, a peer that goes
away and comes back, idle connections probed (NOOP) and collected."""

import pytest


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_both_sides_connect_at_once(scenario, sync):
    r = scenario("crossfire", synchronous=sync, count=500)
    assert r["a_errors"] == [] and r["b_errors"] == [], r
    assert r["a_got"] == 500 and r["b_got"] == 500, r
    # every message exactly once, and in order per direction: a node keeps
    # sending on the connection it started with while the racing one idles
    assert r["a_complete"] and r["b_complete"], r
    assert r["a_in_order"] and r["b_in_order"], r


def test_peer_restarts_on_same_port(scenario):
    r = scenario("restart")
    assert r["first"], r
    down = r["while_down"]
    assert down["failed"], f"a send to a closed node succeeded: {r}"
    assert (
        "ChirpConnectionError" in down["error"]["mro"]
        or "ChirpTimeoutError" in down["error"]["mro"]
    ), r
    assert r["after_restart"] == [True, True, True], r
    assert r["reverse"], r


def test_idle_connection_noop_and_collection(scenario):
    r = scenario("idle")
    steps = r["steps"]
    assert len(steps) == 4, r
    for s in steps:
        assert s["ok"], r
        assert s["secs"] < 2.0, r
    assert r["nothing_else"], r
