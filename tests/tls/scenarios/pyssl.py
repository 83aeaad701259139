"""Python's ssl module as a raw TLS client of a chirp node."""

import ssl
import time

from support import wire
from support.raw import recv_exact

from tls.scenario import emit, err_info, expect_nothing, good_exchange, node, raw_connect


def client_ctx(p, name, max_version=None, min_version=None, ciphers=None, cert=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # node certificates name nodes, not addresses
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(p["ca"])
    if cert:
        ctx.load_cert_chain(p[name])  # cert, CA cert and key in one file
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def run(p):
    variant = p["variant"]
    out = {"variant": variant}
    with node(p, "b", synchronous=False, timeout=2.0) as b, node(p, "a", synchronous=False) as a:
        if variant in ("tls12_dhe", "tls13"):
            if variant == "tls12_dhe":
                ctx = client_ctx(
                    p,
                    "c",
                    max_version=ssl.TLSVersion.TLSv1_2,
                    ciphers="DHE-RSA-AES128-GCM-SHA256",
                )
            else:
                ctx = client_ctx(p, "c", min_version=ssl.TLSVersion.TLSv1_3)
            raw = raw_connect(b.port)
            with ctx.wrap_socket(raw, server_hostname=None) as s:
                s.settimeout(5)
                s.do_handshake()
                out["version"] = s.version()
                out["cipher"] = s.cipher()[0]
                port, ident = wire.decode_handshake(recv_exact(s, wire.HANDSHAKE_SIZE))
                out["hs_port_ok"] = port == b.port
                out["hs_identity_ok"] = ident == b.identity
                my_ident = bytes(range(16))
                msg_id = b"M" * 16
                header, data = b"py-header", b"hello from python ssl" * 100
                s.sendall(wire.handshake(4321, my_ident) + wire.message(msg_id, 1, data, header))
                m = b.recv(timeout=5)
                out["delivered"] = {
                    "data_ok": bytes(m.data) == data,
                    "header_ok": bytes(m.header) == header,
                    "identity_ok": m.identity == msg_id,
                    "remote_identity_ok": m.remote_identity == my_ident,
                    "port": m.port,
                    "address": m.address,
                }
                # a second message with REQ_ACK: the node acknowledges it
                s.sendall(wire.message(b"N" * 16, 2, b"abc", b"", wire.REQ_ACK))
                m2 = b.recv(timeout=5)
                out["second_ok"] = bytes(m2.data) == b"abc"
                # first the node's capability frame, then the ACK
                cap = wire.decode_header(recv_exact(s, wire.HEADER_SIZE))
                out["capability"] = wire.decode_capability(cap.identity, cap.type)
                ack = recv_exact(s, wire.HEADER_SIZE)
                ident2, _serial, dlen, hlen, typ = wire.decode_header(ack)
                out["ack"] = {"identity_ok": ident2 == b"N" * 16, "type": typ, "len": dlen + hlen}
        elif variant in ("tls11", "no_client_cert", "other_ca_client"):
            if variant == "tls11":
                ctx = client_ctx(
                    p,
                    "c",
                    min_version=ssl.TLSVersion.TLSv1_1,
                    max_version=ssl.TLSVersion.TLSv1_1,
                    ciphers="DEFAULT:@SECLEVEL=0",
                )
            elif variant == "no_client_cert":
                ctx = client_ctx(p, "c", cert=False)
            else:
                ctx = client_ctx(p["other"], "x")
                ctx.load_verify_locations(p["ca"])  # it trusts b, b must not trust it
            raw = raw_connect(b.port)
            t0 = time.monotonic()
            try:
                with ctx.wrap_socket(raw, server_hostname=None) as s:
                    s.settimeout(5)
                    s.do_handshake()
                    out["client_handshake_done"] = True
                    out["version"] = s.version()
                    # with TLS 1.3 the server's verdict on our certificate
                    # comes after the client finished: the node must not
                    # send its chirp handshake, and must close
                    try:
                        got = recv_exact(s, wire.HANDSHAKE_SIZE)
                        out["got_chirp_handshake"] = True
                        out["got"] = got.hex()
                    except (ssl.SSLError, OSError, ConnectionError) as e:
                        out["got_chirp_handshake"] = False
                        out["error"] = err_info(e)
            except (ssl.SSLError, OSError) as e:
                out["client_handshake_done"] = False
                out["error"] = err_info(e)
            out["secs"] = time.monotonic() - t0
        else:
            raise SystemExit(f"unknown variant {variant}")
        out["nothing_else_delivered"] = expect_nothing(b, wait=0.3)
        out["good_after"] = good_exchange(a, b)
    emit(kind="result", **out)
