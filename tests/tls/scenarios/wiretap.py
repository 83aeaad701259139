"""a -> tap -> b and the answer back: with TLS the payload, header and
identities never appear on the wire; with encryption disabled (the
control) they do."""

import socket
import threading
import time

from tls.scenario import ADDRESS, emit, node


class Tap:
    """A TCP forwarder on ADDRESS that keeps a copy of the bytes in each
    direction, to see what really goes over the wire."""

    def __init__(self, target_port):
        self.target = (ADDRESS, target_port)
        self.lsock = socket.socket()
        self.lsock.bind(("0.0.0.0", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.up = bytearray()  # client -> server
        self.down = bytearray()  # server -> client
        self.stop = threading.Event()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except (TimeoutError, OSError):
                continue
            s = socket.create_connection(self.target, timeout=5)
            self.socks += [c, s]
            threading.Thread(target=self._pipe, args=(c, s, self.up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, self.down), daemon=True).start()

    def _pipe(self, src, dst, log):
        src.settimeout(0.2)
        while not self.stop.is_set():
            try:
                b = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not b:
                break
            log += b
            try:
                dst.sendall(b)
            except OSError:
                break
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        for s in self.socks:
            s.close()
        self.lsock.close()


def run(p):
    """a -> tap -> b and the answer back: with TLS the payload, header and
    identities never appear on the wire; with encryption disabled (the
    control) they do."""
    plain = p["plaintext"]
    kw = {"disable_encryption": True} if plain else {}
    name_a, name_b = (None, None) if plain else ("a", "b")
    secret = b"SECRET-PAYLOAD-" + b"x" * 200
    with (
        node(p, name_a, synchronous=True, **kw) as a,
        node(p, name_b, synchronous=False, **kw) as b,
    ):
        tap = Tap(b.port)
        try:
            fut = a.send_async((ADDRESS, tap.port), secret, header=b"SECRET-HEADER")
            m = b.recv(timeout=10)
            rf = b.reply_async(m, b"SECRET-ANSWER")
            ans = a.recv(timeout=10)
            fut.result(timeout=10)
            rf.result(timeout=10)
            time.sleep(0.1)
            up, down = bytes(tap.up), bytes(tap.down)
        finally:
            tap.close()
        out = {
            "delivered": bytes(m.data) == secret and bytes(m.header) == b"SECRET-HEADER",
            "answered": bytes(ans.data) == b"SECRET-ANSWER",
            "up_len": len(up),
            "down_len": len(down),
            "up_head": up[:5].hex(),
            "down_head": down[:5].hex(),
            "payload_visible": secret in up,
            "header_visible": b"SECRET-HEADER" in up,
            "answer_visible": b"SECRET-ANSWER" in down,
            "identity_visible": a.identity in up or b.identity in down,
        }
    emit(kind="result", **out)
