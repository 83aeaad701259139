"""TLS: chirp <-> chirp exchanges, rejections, raw and Python-ssl clients,
allocation failures, in network namespaces (support/netns.py) so that both
sides see a non-loopback address and must use TLS."""
