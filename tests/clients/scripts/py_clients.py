"""One Python HTTP client GETs URL (or, for `openai-*`, calls the OpenAI API at URL/v1) and prints
what it got (on failure: how long the call took, and why). Nothing here sets a proxy or a CA:
each client takes them from the environment.

    python py_clients.py CLIENT URL
"""

from __future__ import annotations

import asyncio
import sys


def openai_sync(base: str) -> str:
    import openai

    return openai.OpenAI(base_url=f"{base}/v1", max_retries=0).models.list().data[0].id


def openai_async(base: str) -> str:
    import openai

    async def call() -> str:
        async with openai.AsyncOpenAI(base_url=f"{base}/v1", max_retries=0) as client:
            return (await client.models.list()).data[0].id

    return asyncio.run(call())


def openai_stream(base: str) -> str:
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def openai_responses(base: str) -> str:
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", max_retries=0)
    return client.responses.create(model="gpt-4o-mini", input="hi").output_text


def openai_responses_stream(base: str) -> str:
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", max_retries=0)
    stream = client.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
    return "".join(deltas)


def websockets_echo(base: str) -> str:
    """A WebSocket through the proxy: websockets (15+) reads the proxy from the environment."""
    from websockets.sync.client import connect

    with connect(base.replace("https://", "wss://", 1) + "/ws", open_timeout=10) as socket:
        socket.send("hi")
        return str(socket.recv(timeout=10))


def httpx_get(base: str) -> str:
    import httpx

    return httpx.get(f"{base}/v1/models", timeout=20).raise_for_status().text


def requests_get(base: str) -> str:
    import requests

    response = requests.get(f"{base}/v1/models", timeout=20)
    response.raise_for_status()
    return response.text


def urllib_get(base: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{base}/v1/models", timeout=20) as response:
        return response.read().decode()


def aiohttp_get(base: str, trust_env: bool) -> str:
    import aiohttp

    async def call() -> str:
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(trust_env=trust_env, timeout=timeout) as session:
            async with session.get(f"{base}/v1/models") as response:
                response.raise_for_status()
                return await response.text()

    return asyncio.run(call())


CLIENTS = {
    "openai-sync": openai_sync,
    "openai-async": openai_async,
    "openai-stream": openai_stream,
    "openai-responses": openai_responses,
    "openai-responses-stream": openai_responses_stream,
    "httpx": httpx_get,
    "requests": requests_get,
    "urllib": urllib_get,
    "aiohttp-trust-env": lambda base: aiohttp_get(base, True),
    "aiohttp-default": lambda base: aiohttp_get(base, False),
    "websockets": websockets_echo,
}

if __name__ == "__main__":
    import time

    started = time.monotonic()
    try:
        print(CLIENTS[sys.argv[1]](sys.argv[2]))
    except Exception as exc:  # the test reads how long the failing call took
        print(f"failed after {time.monotonic() - started:.3f} s: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
