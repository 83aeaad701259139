"""The option table: one entry per option drives Config, its checks, the C
struct and docs/options.md; the C core checks the same bounds (each
option probed at and beyond its bounds in both)."""

from __future__ import annotations

import dataclasses
import math
import os

import pytest

from chirp import Config
from chirp._chirp import ffi, lib
from chirp.config import BOOL, INT, OPTIONS, SECONDS, U32, check, options_markdown, to_c

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBERS = [o for o in OPTIONS if o.kind in (INT, U32, SECONDS)]


def test_docs_options_md_is_current():
    with open(os.path.join(ROOT, "docs", "options.md")) as f:
        assert f.read() == options_markdown(), "run: python tools/options_doc.py > docs/options.md"


def test_config_has_exactly_the_table_in_its_order():
    assert [f.name for f in dataclasses.fields(Config)] == [o.name for o in OPTIONS]
    assert Config.option_names() == [o.name for o in OPTIONS]
    cfg = Config()
    assert all(getattr(cfg, o.name) == o.default for o in OPTIONS)
    assert all(o.name in Config.__doc__ for o in OPTIONS)


def test_the_c_defaults_are_the_tables():
    c, _keep = to_c(Config())
    d = ffi.new("ch_config_t *")
    lib.ch_config_init(d)
    for o in NUMBERS + [o for o in OPTIONS if o.kind == BOOL]:
        assert getattr(c, o.name) == getattr(d, o.name), o.name


# Options checked against each other, set out of the way of a probe of one.
_APART = {"max_msg_size": ("max_memory", 2**32 - 1), "max_memory": ("max_msg_size", 1)}


def _c_accepts(name: str, value: float) -> bool:
    c = ffi.new("ch_config_t *")
    lib.ch_config_init(c)
    if name in _APART:
        setattr(c, *_APART[name])
    setattr(c, name, value)
    err = ffi.new("char[]", 256)
    rc = lib.ch_config_check(c, err, 256)
    if rc != 0:
        assert name in ffi.string(err).decode()  # the message names the option
    return rc == 0


def _py_accepts(o, value) -> bool:
    try:
        check(o, value)
    except ValueError as e:
        assert o.name in str(e)
        return False
    return True


def _probes(o) -> list:
    if o.kind == SECONDS:
        # An option that may be unset takes None in Python, a negative
        # number in C (tested below): no negative probe for it here.
        low = [] if o.unset_ok else [-1.0]
        return [o.lo, o.lo + 0.001, o.hi, o.hi + 1, 0.0, math.nan, *low]
    vals = [int(o.lo) - 1, int(o.lo), int(o.lo) + 1, int(o.hi) - 1, int(o.hi), 0]
    if o.kind == INT:
        vals.append(int(o.hi) + 1)  # an int field holds it; a U32 at 2**32-1 cannot
    return [v for v in vals if o.kind == INT or v >= 0]


@pytest.mark.parametrize("o", NUMBERS, ids=lambda o: o.name)
def test_c_and_python_accept_the_same_values(o):
    for value in _probes(o):
        assert _c_accepts(o.name, value) == _py_accepts(o, value), (o.name, value)


def test_max_msg_size_above_max_memory_is_refused_by_both():
    """A message bigger than the memory budget could never be received."""
    c = ffi.new("ch_config_t *")
    lib.ch_config_init(c)
    c.max_memory, c.max_msg_size = 1 << 20, (1 << 20) + 1
    err = ffi.new("char[]", 256)
    assert lib.ch_config_check(c, err, 256) != 0
    assert "max_msg_size (1048577) is more than max_memory (1048576)" in ffi.string(err).decode()
    with pytest.raises(ValueError, match=r"max_msg_size \(1048577\) is more than max_memory"):
        Config(max_memory=1 << 20, max_msg_size=(1 << 20) + 1)
    c.max_msg_size = 1 << 20
    assert lib.ch_config_check(c, err, 256) == 0
    assert Config(max_memory=1 << 20, max_msg_size=1 << 20).max_memory == 1 << 20


def test_an_unset_option_is_none_in_python_and_negative_in_c():
    unset = [o for o in OPTIONS if o.unset_ok]
    assert [o.name for o in unset] == ["linger"]
    for o in unset:
        assert check(o, None) is None and o.default is None
        assert _c_accepts(o.name, -1.0)
        c, _keep = to_c(Config())
        assert getattr(c, o.name) == -1.0


def test_a_bad_bool_is_refused_by_the_core_too():
    assert _c_accepts("synchronous", 1) and not _c_accepts("synchronous", 2)
    with pytest.raises(TypeError, match="synchronous must be a bool"):
        Config(synchronous=1)


def test_addresses_checked_in_both():
    c = ffi.new("ch_config_t *")
    lib.ch_config_init(c)
    bad = ffi.new("char[]", b"::1")
    c.bind_v4 = bad
    err = ffi.new("char[]", 256)
    assert lib.ch_config_check(c, err, 256) != 0
    assert "bind_v4 is not an IPv4 address" in ffi.string(err).decode()
    with pytest.raises(ValueError, match="bind_v4 is not an IPv4 address"):
        Config(bind_v4="::1")
    empty = ffi.new("char[]", b"")
    c.bind_v4 = c.bind_v6 = empty
    assert lib.ch_config_check(c, err, 256) != 0
    assert "nothing to listen on" in ffi.string(err).decode()
