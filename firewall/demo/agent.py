"""The demo's agent: a few OpenAI-style calls with nothing but the standard library.

It reads its key from OPENAI_API_KEY (under `firewall run` that is a
placeholder) and goes through whatever proxy HTTPS_PROXY names, trusting the
CA bundle in SSL_CERT_FILE: exactly what an SDK-based agent does.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import urllib.error
import urllib.request

WIDTH = 80  # a terminal's columns: the demo is read in one
INDENT = " " * 7


def call(method: str, url: str, payload: dict | None = None) -> str:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("authorization", f"Bearer {os.environ.get('OPENAI_API_KEY', '')}")
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return f"{response.status}"
    except urllib.error.HTTPError as error:
        detail = json.loads(error.read() or b"{}").get("error", {})
        return f"{error.code} {detail.get('type', '')}: {detail.get('message', '')}"
    except urllib.error.URLError as error:
        return f"failed: {error.reason}"


def main(base: str) -> None:
    steps = [
        ("chat, a cheap model", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"}),
        ("chat, a pricey model", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4.5"}),
        ("generate an image", "POST", f"{base}/v1/images/generations", {"model": "gpt-image-1"}),
        ("read uploaded files", "GET", f"{base}/v1/files", None),
        ("fine-tune (held)", "POST", f"{base}/v1/fine_tuning/jobs", {"model": "gpt-4o-mini"}),
        ("list models", "GET", f"{base}/v1/models", None),
        ("chat again", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"}),
        ("and again", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"}),
        ("once too often", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"}),
        ("a host no block names", "GET", "https://example.com/", None),
    ]
    print(f"agent: my OPENAI_API_KEY is {os.environ.get('OPENAI_API_KEY')!r}")
    for label, method, url, payload in steps:
        status, _, message = call(method, url, payload).partition(": ")
        # The stand-in's own calls by path (its address is in the lines above): 80 columns hold a line.
        where = url[len(base) :] if url.startswith(base) else url.split("//", 1)[1]
        print(f"agent: {label:<22} {method:<4} {where:<22} -> {status}")
        # the refusal's message, as the agent read it
        for line in textwrap.wrap(message, WIDTH - len(INDENT), break_on_hyphens=False):
            print(INDENT + line)
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
