"""The TLS scenarios' runner and what they share.

A scenario is a module of tests/tls/scenarios with a function run(params);
the ``scenario`` fixture (tls/conftest.py) runs it inside a network
namespace of its own (support/netns.py) as

    python -m tls.scenario NAME 'JSON-PARAMS'

Every scenario reports facts as JSON lines on stdout and ends with one
``{"kind": "result", ...}`` line; the tests make the assertions.  Nodes bind
0.0.0.0 only and talk to (ADDRESS, port), which both sides see as a
non-loopback address, so every chirp connection is TLS unless a node
disables encryption.  Every wait is bounded; the whole process gives up
after LIFETIME seconds (and dies with the test process anyway).
"""

import faulthandler
import importlib
import json
import os
import sys
import time
import warnings

from support.net import NAMESPACE_ADDRESS as ADDRESS
from support.raw import connect

import chirp

LIFETIME = float(os.environ.get("CHIRP_TLS_SCENARIO_LIFETIME", "50"))


def emit(**rec):
    sys.stdout.write(json.dumps(rec, sort_keys=True) + "\n")
    sys.stdout.flush()


def err_info(e):
    return {
        "type": type(e).__name__,
        "mro": [c.__name__ for c in type(e).__mro__],
        "msg": str(e),
    }


def node(p, name, **kw):
    """A node on 0.0.0.0 with the certificate of ``name`` from PKI ``p``
    (None: no certificate)."""
    kw.setdefault("port", 0)
    kw.setdefault("bind_v6", "")
    kw.setdefault("timeout", 5.0)
    if name is not None:
        kw.setdefault("cert_chain_pem", p[name])
        kw.setdefault("dh_params_pem", p["dh"])
    return chirp.Node(**kw)


def to(n):
    return (ADDRESS, n.port)


def expect_nothing(n, wait=0.5):
    """True if nothing arrives at ``n`` within ``wait`` seconds."""
    try:
        m = n.recv(timeout=wait)
    except chirp.ChirpTimeoutError:
        return True
    emit(kind="unexpected", data_len=len(m.data), header=m.header.hex())
    return False


def send_and_fail(sender, dest, timeout=10.0):
    """Send one message that should fail; the error and how long it took."""
    t0 = time.monotonic()
    fut = sender.send_async(dest, b"must not arrive", header=b"nope")
    try:
        fut.result(timeout=timeout)
    except Exception as e:  # the wrong type of error is a finding: reported
        return {"failed": True, "error": err_info(e), "elapsed": time.monotonic() - t0}
    return {"failed": False, "elapsed": time.monotonic() - t0}


def good_exchange(sender, receiver, data=b"still serving", header=b"ok"):
    """``sender`` -> ``receiver`` one message; True if it came intact."""
    fut = sender.send_async(to(receiver), data, header=header)
    try:
        m = receiver.recv(timeout=10)
        fut.result(timeout=10)
    except Exception as e:
        emit(kind="good_exchange_failed", error=err_info(e))
        return False
    return bytes(m.data) == data and bytes(m.header) == header


def raw_connect(port):
    """A plain TCP connection to (ADDRESS, port)."""
    return connect(port, ADDRESS)


def results(futs, timeout=10):
    """The errors of futs, as err_info records."""
    errs = []
    for f in futs:
        try:
            f.result(timeout=timeout)
        except Exception as e:
            errs.append(err_info(e))
    return errs


def main(argv):
    # TLS 1.1 is deprecated in Python's ssl module; a scenario uses it on purpose.
    warnings.simplefilter("ignore", DeprecationWarning)
    faulthandler.dump_traceback_later(LIFETIME, exit=True)
    name = argv[0]
    params = json.loads(argv[1]) if len(argv) > 1 else {}
    importlib.import_module(f"tls.scenarios.{name}").run(params)


if __name__ == "__main__":
    # The scenarios import this module as tls.scenario: run that one, not
    # this copy (__main__), so there is one set of helpers.
    from tls import scenario

    scenario.main(sys.argv[1:])
