"""Configuration contract: defaults, validation, chirp.Config, exceptions."""

import math
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.net import LOCAL, free_port
from support.nodes import NodeFactory, addr, roundtrip

import chirp

MIB = 1024 * 1024

# (keyword arguments, expected exception, option name that the message names)
BAD_VALUES = [
    (dict(port=-1), ValueError, "port"),
    (dict(port=65536), ValueError, "port"),
    (dict(port=70000), ValueError, "port"),
    (dict(port="x"), TypeError, "port"),
    (dict(port=1.5), TypeError, "port"),
    (dict(timeout=0), ValueError, "timeout"),
    (dict(timeout=-1), ValueError, "timeout"),
    (dict(timeout=float("nan")), ValueError, "timeout"),
    (dict(timeout="5"), TypeError, "timeout"),
    (dict(reuse_time=-1), ValueError, "reuse_time"),
    (dict(reuse_time="30"), TypeError, "reuse_time"),
    (dict(max_slots=0), ValueError, "max_slots"),
    (dict(max_slots=1025), ValueError, "max_slots"),
    (dict(max_slots=-1), ValueError, "max_slots"),
    (dict(max_slots="4"), TypeError, "max_slots"),
    (dict(max_slots=2.0), TypeError, "max_slots"),
    (dict(identity=b"short"), ValueError, "identity"),
    (dict(identity=b"x" * 17), ValueError, "identity"),
    (dict(identity="0123456789abcdef"), TypeError, "identity"),
    (dict(identity=12345), TypeError, "identity"),
    (dict(max_msg_size=0), ValueError, "max_msg_size"),
    (dict(max_msg_size=-5), ValueError, "max_msg_size"),
    (dict(max_msg_size="big"), TypeError, "max_msg_size"),
    (dict(backlog=0), ValueError, "backlog"),
    (dict(backlog=-1), ValueError, "backlog"),
    (dict(backlog="100"), TypeError, "backlog"),
    (dict(buffer_size=-1), ValueError, "buffer_size"),
    (dict(buffer_size="1k"), TypeError, "buffer_size"),
    (dict(bind_v4="not-an-ip"), ValueError, "bind_v4"),
    (dict(bind_v4="::1"), ValueError, "bind_v4"),
    (dict(bind_v4="256.1.1.1"), ValueError, "bind_v4"),
    (dict(bind_v4=123), TypeError, "bind_v4"),
    (dict(bind_v6="not-an-ip"), ValueError, "bind_v6"),
    (dict(bind_v6="127.0.0.1"), ValueError, "bind_v6"),
    (dict(bind_v6=6), TypeError, "bind_v6"),
    (dict(synchronous="yes"), TypeError, "synchronous"),
    (dict(auto_release="no"), TypeError, "auto_release"),
    (dict(disable_encryption=1.0), TypeError, "disable_encryption"),
    (dict(cert_chain_pem=42), TypeError, "cert_chain_pem"),
    (dict(spin_us=-1), ValueError, "spin_us"),
    (dict(spin_us=100_001), ValueError, "spin_us"),
    (dict(spin_us=1.5), TypeError, "spin_us"),
    (dict(spin_us="50"), TypeError, "spin_us"),
    (dict(inbox_size=100), ValueError, "inbox_size"),
    (dict(inbox_size=2**30 + 1), ValueError, "inbox_size"),
    (dict(inbox_size=True), TypeError, "inbox_size"),
    (dict(inbox_size=4096.0), TypeError, "inbox_size"),
    (dict(no_such_option=1), TypeError, "no_such_option"),
    (dict(Port=1), TypeError, "Port"),
]


def _id(case):
    kw = case[0]
    ((k, v),) = kw.items()
    return f"{k}={v!r}"


def _os_threads():
    return len(os.listdir("/proc/self/task"))


@pytest.fixture(scope="module", autouse=True)
def _warm_up():
    """Start and stop one node first, so that anything chirp sets up once per
    process is not mistaken for a thread left by a rejected config."""
    factory = NodeFactory()
    factory()
    factory.close()


@pytest.mark.parametrize("kw,exc,name", BAD_VALUES, ids=[_id(c) for c in BAD_VALUES])
def test_node_rejects_bad_option(kw, exc, name):
    port = free_port()
    threads_before = _os_threads()
    args = dict(port=port, disable_encryption=True)
    args.update(kw)
    with pytest.raises(exc) as info:
        node = chirp.Node(**args)
        node.close()  # only reached on failure to raise
    # the error names the option
    assert name in str(info.value), f"message {str(info.value)!r} does not name {name!r}"
    # nothing was started: the port is still free and no thread was left
    if "port" not in kw:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((LOCAL, port))  # would fail if the node had bound it
        finally:
            s.close()
    assert _os_threads() <= threads_before


@pytest.mark.parametrize("kw,exc,name", BAD_VALUES, ids=[_id(c) for c in BAD_VALUES])
def test_config_rejects_bad_option(kw, exc, name):
    """chirp.Config validates like Node: either at construction or, at the
    latest, when a Node is made from it -- never by starting a broken node."""
    with pytest.raises(exc) as info:
        cfg = chirp.Config(**kw)
        node = chirp.Node(cfg)
        node.close()
    assert name in str(info.value)


def test_config_defaults():
    cfg = chirp.Config()
    assert cfg.port == 2998
    assert cfg.timeout == 5.0
    assert cfg.reuse_time == 30.0
    assert cfg.max_msg_size == 100 * MIB
    assert cfg.backlog == 100
    assert cfg.synchronous is True
    assert cfg.auto_release is True
    assert cfg.disable_encryption is False
    assert cfg.bind_v4 == "0.0.0.0"
    assert cfg.bind_v6 == "::"
    assert cfg.identity is None
    assert cfg.spin_us == 50
    assert cfg.inbox_size == 256 * 1024


def test_node_config_reflects_defaults_and_overrides(node_factory):
    with node_factory(
        timeout=1.5,
        reuse_time=12.0,
        backlog=7,
        max_msg_size=MIB,
        synchronous=False,
        auto_release=False,
    ) as node:
        cfg = node.config
        assert isinstance(cfg, chirp.Config)
        assert cfg.timeout == 1.5
        assert cfg.reuse_time == 12.0
        assert cfg.backlog == 7
        assert cfg.max_msg_size == MIB
        assert cfg.synchronous is False
        assert cfg.auto_release is False
        assert cfg.disable_encryption is True
        # untouched options keep their defaults
        assert cfg.bind_v4 == "0.0.0.0"
        assert cfg.bind_v6 == "::"


def test_defaults_on_node(node_factory):
    with node_factory() as node:
        cfg = node.config
        assert cfg.timeout == 5.0
        assert cfg.reuse_time == 30.0
        assert cfg.max_msg_size == 100 * MIB
        assert cfg.backlog == 100
        assert cfg.synchronous is True
        assert cfg.auto_release is True


def test_port_zero_picks_a_port_and_listens(node_factory):
    with node_factory() as node:
        assert isinstance(node.port, int)
        assert 0 < node.port < 65536
        # something really listens there
        s = socket.create_connection((LOCAL, node.port), timeout=5)
        s.close()


def test_fixed_port_is_used(node_factory):
    port = free_port()
    with node_factory(port=port) as node:
        assert node.port == port
        s = socket.create_connection((LOCAL, port), timeout=5)
        s.close()


def test_port_in_use_fails(node_factory):
    with node_factory() as first:
        with pytest.raises((OSError, chirp.ChirpError)):
            n = node_factory(port=first.port)
            n.close()


def test_identity_random_and_fixed(node_factory):
    with node_factory() as a, node_factory() as b:
        assert isinstance(a.identity, bytes) and len(a.identity) == 16
        assert a.identity != b.identity
    ident = bytes(range(16))
    with node_factory(identity=ident) as c:
        assert c.identity == ident
        assert c.config.identity == ident


@pytest.mark.parametrize("slots", [1, 1024])
def test_max_slots_bounds_accepted(node_factory, slots):
    with node_factory(max_slots=slots, synchronous=False) as node:
        assert node.config.max_slots == slots


def test_node_accepts_config_object(node_factory):
    ident = b"C" * 16
    cfg = chirp.Config(
        port=0, timeout=2.5, identity=ident, disable_encryption=True, synchronous=False
    )
    with node_factory(cfg) as node, node_factory() as other:
        assert node.identity == ident
        assert node.config.timeout == 2.5
        assert node.config.synchronous is False
        assert node.port != 0
        msg = roundtrip(other, node, b"via config")
        assert msg.data == b"via config"
        assert msg.remote_identity == other.identity


def test_node_accepts_config_keyword(node_factory):
    cfg = chirp.Config(port=0, timeout=2.0, disable_encryption=True)
    with node_factory(config=cfg) as node:
        assert node.config.timeout == 2.0
        assert node.port > 0


def test_bind_v4_loopback_only(node_factory):
    with node_factory(bind_v4="127.0.0.1") as node:
        s = socket.create_connection((LOCAL, node.port), timeout=5)
        s.close()


def test_exception_hierarchy():
    assert issubclass(chirp.ChirpTimeoutError, chirp.ChirpError)
    assert issubclass(chirp.ChirpTimeoutError, TimeoutError)
    assert issubclass(chirp.ChirpConnectionError, chirp.ChirpError)
    assert issubclass(chirp.ChirpConnectionError, ConnectionError)
    assert issubclass(chirp.ProtocolError, chirp.ChirpError)
    assert issubclass(chirp.ClosedError, chirp.ChirpError)
    assert issubclass(chirp.ChirpError, Exception)


def test_timeout_is_float_like(node_factory):
    with node_factory(timeout=2) as node:  # an int is a valid number of seconds
        assert math.isclose(node.config.timeout, 2.0)


valid_options = st.fixed_dictionaries(
    {},
    optional={
        "timeout": st.floats(min_value=0.05, max_value=60.0),
        "reuse_time": st.floats(min_value=0.5, max_value=600.0),
        "max_slots": st.integers(min_value=1, max_value=1024),
        "synchronous": st.booleans(),
        "max_msg_size": st.integers(min_value=64, max_value=200 * MIB),
        "backlog": st.integers(min_value=1, max_value=1000),
        "auto_release": st.booleans(),
        "identity": st.binary(min_size=16, max_size=16),
        "buffer_size": st.sampled_from([0, 1024, 4096, 65536, 1 << 20]),
        "spin_us": st.sampled_from([0, 1, 50, 2000]),
        "inbox_size": st.sampled_from([0, 4096, 65536, 1 << 20]),
    },
)


@settings(
    max_examples=25,
    deadline=None,
    # each example closes its nodes (the with block)
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(opts=valid_options)
def test_any_valid_config_works(node_factory, opts):
    """Every valid combination starts a node that reports its options back
    and exchanges a message with a default node."""
    with node_factory(**opts) as node, node_factory(synchronous=False) as other:
        cfg = node.config
        for key, value in opts.items():
            got = getattr(cfg, key)
            if isinstance(value, float):
                assert math.isclose(got, value), key
            else:
                assert got == value, key
        if "identity" in opts:
            assert node.identity == opts["identity"]
        fut = other.send_async(addr(node), b"cfg", header=b"h")
        msg = node.recv(timeout=10.0)
        assert (msg.data, msg.header) == (b"cfg", b"h")
        msg.release()
        assert fut.result(timeout=10.0) is None
        back = roundtrip(node, other, b"back")
        assert back.remote_identity == node.identity
