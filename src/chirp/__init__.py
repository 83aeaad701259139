"""chirp: brokerless message passing between Python programs, on a C99 core.

>>> import chirp
>>> with chirp.Node(port=0) as node:
...     node.port > 0
True
"""

from ._futures import ChirpFuture
from .config import Config
from .errors import (
    AddressError,
    ChirpConnectionError,
    ChirpError,
    ChirpMemoryError,
    ChirpTimeoutError,
    ClosedError,
    MessageSizeError,
    ProtocolError,
    RejectedError,
    TLSError,
)
from .events import PeerEvent, PeerInfo
from .message import Message
from .node import Node
from .router import Router

__version__ = "0.1.0"

__all__ = [
    "AddressError",
    "ChirpConnectionError",
    "ChirpError",
    "ChirpFuture",
    "ChirpMemoryError",
    "ChirpTimeoutError",
    "ClosedError",
    "Config",
    "Message",
    "MessageSizeError",
    "Node",
    "PeerEvent",
    "PeerInfo",
    "ProtocolError",
    "RejectedError",
    "Router",
    "TLSError",
    "__version__",
]
