"""TLS: a small PKI made with chirp.pki, and nodes that use it.

    python examples/tls.py               # over 127.0.0.1: plaintext, see below
    python examples/tls.py 198.18.0.1    # over a non-loopback address of this host

chirp encrypts a connection (mutual TLS) unless disable_encryption=True or
the peer's address is exactly 127.0.0.1 or ::1: over loopback a connection
is plaintext whatever certificates the nodes have, and the first run above
shows exactly that.  On one host, a connection to any other local address
still comes from 127.0.0.1, so the two ends would disagree; to see TLS on
one machine, give the program a network namespace of its own (as root);
there both ends of mallory's failed handshake also log it (logger "chirp"):

    unshare -n sh -c 'ip link set lo up && ip addr add 198.18.0.1/32 dev lo \\
        && python examples/tls.py 198.18.0.1'
"""

import sys
import tempfile
from pathlib import Path

import chirp
from chirp.pki import make_pki

OPTS = dict(port=0, bind_v6="", timeout=2.0, synchronous=False)


def main(host: str) -> None:
    encrypted = host not in ("127.0.0.1", "::1")
    print(f"peers at {host}: {'TLS' if encrypted else 'plaintext (loopback)'}")
    with tempfile.TemporaryDirectory() as tmp:
        # chirp pki DIR --name alpha --name beta does the same from a shell
        pki = make_pki(tmp, ["alpha", "beta"])
        other = make_pki(Path(tmp, "other"), ["mallory"], ca_name="another CA")
        print(f"made {', '.join(sorted(p.name for p in pki.values()))} in a temporary directory")

        try:  # a file without the node's key: refused when the node starts
            chirp.Node(cert_chain_pem=str(pki["ca"]), **OPTS)
        except chirp.TLSError as e:
            print(f"cert_chain_pem without a key: TLSError at start ({e})")

        def node(paths: dict[str, Path], name: str) -> chirp.Node:
            return chirp.Node(
                cert_chain_pem=str(paths[name]), dh_params_pem=str(paths["dh"]), **OPTS
            )

        with node(pki, "alpha") as alpha, node(pki, "beta") as beta, node(other, "mallory") as m:
            to_beta = (host, beta.port)
            alpha.send_async(to_beta, b"hello from alpha").result(timeout=10)
            print(f"beta got {beta.recv(timeout=5).data!r} (same CA)")

            # a certificate from another CA
            err = m.send_async(to_beta, b"hello from mallory").exception(timeout=10)
            if err is None:
                got = beta.recv(timeout=5).data
                print(f"beta got {got!r}: over loopback no certificate is checked")
            else:
                print(f"mallory (another CA) was refused: {type(err).__name__} ({err})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1")
