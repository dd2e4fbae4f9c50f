"""A local HTTPS stand-in for the OpenAI API: enough of it for the demo's agent.

It records the Authorization header each request arrived with, so the demo
can show that the agent sent a placeholder and the upstream got the real key.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandIn:
    def __init__(self, server_pem: str):
        self.authorizations: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                standin.authorizations.append(self.headers.get("authorization", ""))
                if self.path.startswith("/v1/chat/completions"):
                    reply = {
                        "id": "chatcmpl-demo",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Hello from the stand-in."},
                            }
                        ],
                    }
                elif self.path.startswith("/v1/models"):
                    reply = {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}
                else:
                    reply = {"object": "demo", "path": self.path}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_pem)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
