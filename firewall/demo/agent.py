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

WIDTH = 100
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
        ("chat with a cheap model", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"}),
        ("chat with an expensive model", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4.5"}),
        ("generate an image", "POST", f"{base}/v1/images/generations", {"model": "gpt-image-1"}),
        ("read uploaded files", "GET", f"{base}/v1/files", None),
        ("start a fine-tuning job (held)", "POST", f"{base}/v1/fine_tuning/jobs", {"model": "gpt-4o-mini"}),
        ("list models", "GET", f"{base}/v1/models", None),
        ("chat again", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"}),
        ("and again", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"}),
        ("once too often", "POST", f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"}),
        ("call a host the policy does not name", "GET", "https://example.com/", None),
    ]
    print(f"agent: my OPENAI_API_KEY is {os.environ.get('OPENAI_API_KEY')!r}")
    for label, method, url, payload in steps:
        status, _, message = call(method, url, payload).partition(": ")
        print(f"agent: {label:<36} {method:<4} {url.split('//', 1)[1]:<40} -> {status}")
        for line in textwrap.wrap(message, WIDTH - len(INDENT)):  # the refusal's message, as the agent read it
            print(INDENT + line)
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
