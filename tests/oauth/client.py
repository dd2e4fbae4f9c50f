"""An agent for the OAuth tests: sends COUNT requests at once through the proxy it was given.

    python -m tests.oauth.client URL [--count N] [--then M] [--post JSON]

It reads HTTPS_PROXY and SSL_CERT_FILE from its environment (set by `firewall
run`) like any httpx program, and prints one JSON line: a list of
{"status", "type", "body"} in request order (the COUNT sent at once, then M more one by one)
(`type` is the firewall's error type, if any).
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httpx


async def send(client: httpx.AsyncClient, url: str, post: str | None) -> dict:
    headers = {"originator": "codex_cli_rs", "authorization": "Bearer agent-has-no-real-token"}
    if post is None:
        response = await client.get(url, headers=headers)
    else:
        response = await client.post(url, content=post, headers={**headers, "content-type": "application/json"})
    try:
        error_type = response.json()["error"]["type"]
    except (ValueError, KeyError, TypeError):
        error_type = None
    return {
        "status": response.status_code,
        "type": error_type,
        "body": response.text,
        "retry_after": response.headers.get("retry-after"),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--then", type=int, default=0)
    parser.add_argument("--post")
    args = parser.parse_args()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=args.count)) as client:
        results = await asyncio.gather(*(send(client, args.url, args.post) for _ in range(args.count)))
        for _ in range(args.then):
            results.append(await send(client, args.url, args.post))
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
