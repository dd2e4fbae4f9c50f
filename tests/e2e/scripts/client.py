"""An agent for the end-to-end tests: one real HTTP client makes the named requests.

    python client.py CLIENT BASE_URL OUT.json STEP [STEP ...]

CLIENT is `openai` (the SDK, base_url BASE_URL/v1, key from OPENAI_API_KEY,
max_retries=0), `httpx` (trust_env: proxy variables and SSL_CERT_FILE) or
`curl` (its own proxy and CA variables). STEP is one of STEPS, or `get:/path`.
Nothing here configures a proxy or a CA: each client finds them in the
environment `firewall run` gives it, exactly as a real agent would.

OUT.json gets {"env": this process's environment, "cmdline": its arguments,
"results": [...]}, one result per step: status (None when no HTTP answer came
back), headers (lower-case names), body, events (for streams: [seconds since
the request started, text] per server-sent event, as it arrived) and error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
STREAM_GAP = "0.3"  # seconds between the upstream's stream events
STEPS = {  # name -> (method, path under BASE_URL, JSON body)
    "models": ("GET", "/v1/models", None),
    "files": ("GET", "/v1/files", None),
    "chat": ("POST", "/v1/chat/completions", CHAT),
    "stream": ("POST", f"/v1/chat/completions?gap={STREAM_GAP}", {**CHAT, "stream": True}),
}


def step_request(step: str) -> tuple[str, str, dict | None]:
    if step.startswith("get:"):
        return "GET", step[4:], None
    return STEPS[step]


def result(status=None, headers=None, body="", events=(), error=None) -> dict:
    return {
        "status": status,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "body": body,
        "events": list(events),
        "error": error,
    }


def describe(exc: BaseException) -> str:
    """The exception and its causes, so a test can see e.g. the proxy's 407 inside a connection error."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


def run_openai(base: str, step: str) -> dict:
    import openai

    client = openai.OpenAI(base_url=base + "/v1", max_retries=0, timeout=30)
    started = time.monotonic()
    try:
        if step == "models":
            raw = client.models.with_raw_response.list()
        elif step == "files":
            raw = client.files.with_raw_response.list()
        elif step == "chat":
            raw = client.chat.completions.with_raw_response.create(**CHAT)
        elif step == "stream":
            stream = client.chat.completions.create(**CHAT, stream=True, extra_query={"gap": STREAM_GAP})
            events = [(time.monotonic() - started, chunk.choices[0].delta.content or "") for chunk in stream]
            return result(stream.response.status_code, stream.response.headers, events=events)
        else:
            import httpx

            response = client.get(base + step_request(step)[1], cast_to=httpx.Response)  # absolute: not under /v1
            return result(response.status_code, response.headers, response.text)
        return result(raw.status_code, raw.headers, raw.http_response.text)
    except openai.APIStatusError as exc:
        return result(exc.status_code, exc.response.headers, exc.response.text, error=describe(exc))
    except openai.APIError as exc:
        return result(error=describe(exc))


def run_httpx(base: str, step: str) -> dict:
    import httpx

    method, path, body = step_request(step)
    started = time.monotonic()
    try:
        with httpx.Client(timeout=30) as client, client.stream(method, base + path, json=body) as response:
            events = []
            text = []
            for line in response.iter_lines():
                text.append(line)
                if line.startswith("data:"):
                    events.append((time.monotonic() - started, line))
            return result(response.status_code, response.headers, "\n".join(text), events)
    except httpx.HTTPError as exc:
        return result(error=describe(exc))


def run_curl(base: str, step: str) -> dict:
    method, path, body = step_request(step)
    with tempfile.TemporaryDirectory() as tmp:
        header_file = os.path.join(tmp, "headers")
        command = ["curl", "-sS", "-N", "-D", header_file, "-X", method, base + path]
        if body is not None:
            command += ["-H", "content-type: application/json", "--data-binary", json.dumps(body)]
        started = time.monotonic()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        lines, events = [], []
        for line in iter(child.stdout.readline, b""):
            text = line.decode(errors="replace").rstrip("\r\n")
            lines.append(text)
            if text.startswith("data:"):
                events.append((time.monotonic() - started, text))
        stderr = child.stderr.read().decode(errors="replace")
        code = child.wait(timeout=60)
        status, headers = None, {}
        if os.path.exists(header_file):
            with open(header_file, encoding="latin-1") as handle:
                for raw in handle.read().splitlines():
                    if raw.startswith("HTTP/"):  # the last status line is the answer (after CONNECT's)
                        status, headers = int(raw.split()[1]), {}
                    elif ":" in raw:
                        name, _, value = raw.partition(":")
                        headers[name.strip().lower()] = value.strip()
        error = f"curl exited {code}: {stderr.strip()}" if code else None
        return result(status, headers, "\n".join(lines), events, error) | {"argv": command}


CLIENTS = {"openai": run_openai, "httpx": run_httpx, "curl": run_curl}


def main() -> None:
    client, base, out, *steps = sys.argv[1:]
    with open("/proc/self/cmdline", "rb") as handle:
        cmdline = [arg.decode(errors="replace") for arg in handle.read().split(b"\0") if arg]
    results = [CLIENTS[client](base, step) for step in steps]
    with open(out, "w") as handle:
        json.dump({"env": dict(os.environ), "cmdline": cmdline, "results": results}, handle)


if __name__ == "__main__":
    main()
