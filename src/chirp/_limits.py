"""Sizes and slices the Python side shares: a module of its own, so that
the pump, the core glue and asyncio import them without importing each
other."""

BATCH = 256  # events (and messages, see _core) taken at once
SLICE_MS = 200  # waits in C wake up this often, so that Ctrl-C works
