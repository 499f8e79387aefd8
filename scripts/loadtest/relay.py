"""A TCP relay in front of a real service, which a drill cuts and restores to make that service
unreachable at the network level without stopping it (tests/api/helpers/outage.rs does the same
for the API tests)."""

import socket
import threading


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """Relays 127.0.0.1:<free port> (self.port) to 127.0.0.1:`target_port`."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.down = False
        self.lock = threading.Lock()
        self.open = set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.down:
                client.close()  # the service looks unreachable
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        self._close(src, dst)

    def _close(self, *socks):
        for s in socks:
            with self.lock:
                self.open.discard(s)
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self):
        """Drops every relayed connection and refuses new ones."""
        self.down = True
        with self.lock:
            socks = list(self.open)
        self._close(*socks)

    def restore(self):
        self.down = False

    def close(self):
        self.cut()
        self.listener.close()
