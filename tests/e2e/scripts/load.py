"""Concurrent load from one agent: THREADS httpx clients (proxy and CA from the environment).

    python load.py BASE_URL OUT.json THREADS PATHS [--requests N] [--ready FILE] [--stop FILE]

PATHS is a comma list; thread t's i-th request goes to PATHS[(t + i) % len(PATHS)].
With --requests each thread sends N requests. With --stop the threads run until
FILE exists and the wall-clock time written in it has passed (at most 20 s);
--ready FILE is created once every thread has had an answer.
OUT.json gets one record per request: [path, started, ended (time.time()),
status or None, the JSON error type of a refusal or None, error text or None,
the firewall's request id of a refusal or None].
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import httpx

MAX_SECONDS = 20.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("out")
    parser.add_argument("threads", type=int)
    parser.add_argument("paths")
    parser.add_argument("--requests", type=int)
    parser.add_argument("--ready")
    parser.add_argument("--stop")
    args = parser.parse_args()
    paths = args.paths.split(",")
    records: list[list] = []
    answered = threading.Barrier(args.threads + 1)
    started_at = time.monotonic()
    stop_at: list[float] = []

    def keep_going(i: int) -> bool:
        if args.requests is not None:
            return i < args.requests
        if time.monotonic() - started_at > MAX_SECONDS:
            return False
        if not stop_at and os.path.exists(args.stop):
            text = open(args.stop).read().strip()
            if text:
                stop_at.append(float(text))
        return not stop_at or time.time() < stop_at[0]

    def worker(t: int) -> None:
        i = 0
        with httpx.Client(timeout=30) as client:
            while keep_going(i):
                path = paths[(t + i) % len(paths)]
                started = time.time()
                try:
                    response = client.get(args.base + path)
                    refusal = None
                    if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                        refusal = response.json().get("error", {}).get("type")
                    record = [
                        path,
                        started,
                        time.time(),
                        response.status_code,
                        refusal,
                        None,
                        response.headers.get("x-firewall-request-id"),
                    ]
                except httpx.HTTPError as exc:
                    record = [path, started, time.time(), None, None, f"{type(exc).__name__}: {exc}", None]
                records.append(record)  # list.append is atomic under the GIL
                if i == 0:
                    answered.wait(timeout=MAX_SECONDS)
                i += 1
        if i == 0:
            answered.wait(timeout=MAX_SECONDS)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(args.threads)]
    for thread in threads:
        thread.start()
    answered.wait(timeout=MAX_SECONDS)
    if args.ready:
        open(args.ready, "w").close()
    for thread in threads:
        thread.join()
    with open(args.out, "w") as handle:
        json.dump(records, handle)


if __name__ == "__main__":
    main()
