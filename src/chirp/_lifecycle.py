"""A node's life in the Python process, beyond open and close: the exit of
the program, garbage collection, and fork().

- Exit: nodes still open close as close() would (their linger bounds the
  wait) and what they could not deliver is logged.
- Collection: a node collected while open warns (ResourceWarning) and
  closes at once.
- fork(): in the child, the nodes it inherited are the parent's; every
  call on them raises ClosedError and nothing touches the parent's bridge.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
import weakref
from typing import Any

from . import _futures

log = logging.getLogger("chirp")

# Every open core (_core.Core), so that a fork can mark them and the exit
# can close them.
LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


class Uncached(dict[Any, Any]):
    """The address cache of a node inherited by a forked child: never a hit,
    so that every send takes the path that refuses it."""

    def get(self, key: Any, default: Any = None) -> Any:
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _after_fork_in_child() -> None:
    """The child of a fork(): the nodes it inherited are the parent's
    (Core.inherited), and locks another thread may have held at the fork
    are made anew."""
    _futures.after_fork()
    for core in list(LIVE):
        core.inherited()


os.register_at_fork(after_in_child=_after_fork_in_child)


def collected(core: Any) -> None:
    """A Node was garbage-collected while open: warn, as unclosed files and
    sockets do (shown with python -X dev), and close at once (linger 0: a
    collector must not wait)."""
    if core.closing:
        return
    warnings.warn(
        f"unclosed chirp.Node on port {core.port} (identity {core.identity.hex()}); "
        "close it, or use it in a with block",
        ResourceWarning,
        stacklevel=2,
    )
    core.close(linger=0, join=False)


@atexit.register
def _close_at_exit() -> None:
    """Nodes still open when the interpreter exits close as close() would,
    pending sends getting up to the node's linger; what they could not
    deliver is logged, with whom it was for."""
    for core in list(LIVE):
        if core.closing:
            continue
        core.close()
        lost, to_whom = core.losses()
        if lost:
            log.warning(
                "node on port %d closed at exit; %d message(s) not delivered: %s",
                core.port, lost, to_whom,
            )  # fmt: skip
