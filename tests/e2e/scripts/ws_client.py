"""A WebSocket agent: httpx (proxy and CA from the environment) sends the upgrade, then one frame.

    python ws_client.py URL OUT.json

Writes {"status", "headers", "body", "echo", "close_code"}: the handshake's
answer, and after a 101 the echoed text frame and the close code.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", ".."))
from tests.support.upstream import ws_accept, ws_frame, ws_read_frame  # noqa: E402


def main() -> None:
    url, out = sys.argv[1:]
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13", "sec-websocket-key": key}
    report: dict = {}
    with httpx.Client(timeout=30) as client, client.stream("GET", url, headers=headers) as response:
        report.update(status=response.status_code, headers=dict(response.headers))
        if response.status_code != 101:
            report["body"] = response.read().decode(errors="replace")
        else:
            assert response.headers["sec-websocket-accept"] == ws_accept(key)
            stream = response.extensions["network_stream"]
            buffer = bytearray()

            def read(n: int) -> bytes:
                while len(buffer) < n:
                    data = stream.read(65536)
                    if not data:
                        raise EOFError("the connection closed mid-frame")
                    buffer.extend(data)
                chunk = bytes(buffer[:n])
                del buffer[:n]
                return chunk

            stream.write(ws_frame(0x1, b"ping through the firewall", mask=os.urandom(4)))
            opcode, payload = ws_read_frame(read)
            report["echo"] = payload.decode() if opcode == 0x1 else f"opcode {opcode}"
            opcode, payload = ws_read_frame(read)
            report["close_code"] = struct.unpack("!H", payload[:2])[0] if opcode == 0x8 else None
    with open(out, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main()
