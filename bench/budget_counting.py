"""What counting usage costs per streamed answer: the budget reader against a bare pass-through.

    .venv/bin/python bench/budget_counting.py [--answers 2000] [--words 300]

Feeds streamed answers (OpenAI chat with the usage chunk, Responses/Codex, Anthropic), cut
into 97-byte network pieces as the stand-in upstream sends them, through

  pass      a callable that returns each chunk (what the proxy's Streaming addon does);
  count     `StreamCounter(api)`: chunks unchanged, usage read;
  strip     `StreamCounter("chat", strip=True)`: the proxy asked for the usage, takes it back out;

and prints microseconds per answer and per chunk, and the added time per answer. The proxy's
own cost per streamed answer is measured by bench/proxy_overhead.py; docs/performance.md
puts the two side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firewall.budgets.stream import StreamCounter  # noqa: E402
from tests.support import llm_answers as answers  # noqa: E402

PIECE = 97


def pieces(body: bytes) -> list[bytes]:
    return [body[i : i + PIECE] for i in range(0, len(body), PIECE)]


def run(label: str, make, chunks: list[bytes], rounds: int) -> float:
    """Median microseconds per answer: the machine is shared, and a preempted round would
    dominate a mean (rounds of 8-26 ms were seen on 2 busy cores)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        feed = make()
        for chunk in chunks:
            feed(chunk)
        feed(b"")
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--words", type=int, default=300)
    args = parser.parse_args()
    streams = {
        "chat": answers.chat_stream(900, 300, 100, with_usage=True, words=args.words),
        "responses": answers.responses_stream(900, 300, 100, words=args.words),
        "anthropic": answers.anthropic_stream(900, 300, 100, words=args.words),
    }
    print(f"{'api':10} {'bytes':>7} {'chunks':>6} {'pass µs':>8} {'count µs':>9} {'strip µs':>9} {'+µs/answer':>11}")
    for api, body in streams.items():
        chunks = pieces(body)
        passed = run("pass", lambda: lambda chunk: chunk, chunks, args.answers)
        counted = run("count", lambda api=api: StreamCounter(api).feed, chunks, args.answers)
        stripped = (
            run("strip", lambda: StreamCounter("chat", strip=True).feed, chunks, args.answers) if api == "chat" else 0
        )
        worst = max(counted, stripped)
        print(
            f"{api:10} {len(body):7} {len(chunks):6} {passed:8.1f} {counted:9.1f} {stripped:9.1f} "
            f"{worst - passed:11.1f}"
        )


if __name__ == "__main__":
    main()
