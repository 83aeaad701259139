"""Hostile peers: raw sockets that break the protocol, floods, slowloris,
hundreds of held connections, lengths at the edges.  A hostile peer costs
one connection, never the node, and the node's memory stays bounded."""
