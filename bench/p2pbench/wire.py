"""The tracker protocol spoken directly, for case (j): no p2pctl process start, no p2pd."""

import json
import os
import socket

from .util import BenchError


class TrackerConn:
    """One TCP connection to a tracker, speaking its protocol: frames of a 4-byte big-endian
    length and JSON, one request and one answer at a time."""

    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.session = None

    def call(self, call):
        """Sends `call` with a fresh request id (and the session, if any); returns the `Ok`
        reply or raises."""
        request = {"v": 1, "id": os.urandom(16).hex(), "call": call}
        if self.session:
            request["session"] = self.session
        body = json.dumps(request, separators=(",", ":")).encode()
        try:
            self.sock.sendall(len(body).to_bytes(4, "big") + body)
            n = int.from_bytes(self._read(4), "big")
            answer = json.loads(self._read(n))
        except (OSError, ValueError) as e:
            raise BenchError(f"tracker protocol {call.get('op')}: {type(e).__name__}: {e}")
        result = answer.get("result") or {}
        if answer.get("id") != request["id"] or "Ok" not in result:
            raise BenchError(f"tracker protocol {call.get('op')} refused: {answer}")
        return result["Ok"]

    def _read(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise OSError("connection closed by the tracker")
            buf += chunk
        return bytes(buf)

    def close(self):
        self.sock.close()
