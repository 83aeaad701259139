"""The source layout keeps its shape: no include cycle between the C
core's modules, no C file over 700 lines, no Python module over 600
(tools/layout.py, which prints the module graph when run)."""

from __future__ import annotations

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("layout", os.path.join(ROOT, "tools", "layout.py"))
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)


def test_no_include_cycle_between_core_modules():
    graph = layout.module_graph()
    assert "core/node" in graph and "core/conn" in graph["core/node"]
    assert layout.cycles(graph) == []


def test_no_import_cycle_between_package_modules():
    """Deferred imports count too (_futures imports _aio inside a method)."""
    graph = layout.python_graph()
    assert "_core" in graph["node"] and "_aio" in graph["_futures"]
    assert layout.cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    """The check itself: a made-up graph with a cycle is caught."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert layout.cycles(graph) == [["a", "b", "c"]]


def test_no_file_over_its_limit():
    assert layout.long_files() == []
