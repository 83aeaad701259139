"""What a node tells about its peers: connection events and remotes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeerEvent:
    """A connection became ready (``"connected"``), a ready one closed
    (``"disconnected"``), or one closed before it was ready
    (``"refused"``: TLS, handshake, protocol, or connecting failed).

    Every connection has its own events, in the order they happened; two
    connections to one remote (both sides connected at once) give two
    ``connected`` events.  ``reason`` says why a connection closed:
    ``"timeout"``, ``"closed_by_peer"``, ``"tls"``, ``"protocol"``,
    ``"message_too_large"``, ``"idle"`` (collected after reuse_time),
    ``"node_closed"``, ``"connect_failed"``, ``"error"``, ``"no_memory"``,
    ``"limit"`` (refused: max_peer_connections from its address);
    None for ``connected``.  ``detail`` is the core's text (for TLS,
    OpenSSL's reason).  ``dropped`` counts events before this one that
    were not queued because too many waited (the stats' events_dropped).
    """

    kind: str
    address: str
    port: int  # the peer's listening port once known, else its TCP port
    identity: bytes | None  # the remote node's, from its handshake
    encrypted: bool
    outgoing: bool  # this node connected (else the peer did)
    reason: str | None
    detail: str
    error: str | None  # the core's error name ("CH_ETLS"), None: no error
    dropped: int = 0


@dataclass(frozen=True)
class PeerInfo:
    """A remote node this node knows (Node.peers()): connected to, being
    connected to, or with messages still queued for it."""

    address: str
    port: int  # its listening port
    identity: bytes | None  # of its current connection
    connected: bool  # has a ready connection
    encrypted: bool  # that connection is TLS
    connections: int  # connections to it, in any state
    connected_for: float  # seconds the current connection has been ready
    inflight: int  # written, waiting for the acknowledgement
    queued: int  # accepted, not yet written
    sent: int  # messages written to it
    received: int  # messages received from it
