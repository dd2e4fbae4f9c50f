"""Counting what each answer used against the budgets its request counts against (docs/budgets.md).

No policy logic: the engine named the budgets and `Enforcer` checked them (a request
let through carries `notes.budget_hold`). This addon

- asks a streamed chat completion for its usage (`stream_options.include_usage`)
  when the agent did not, and then takes that usage back out of the stream;
- feeds a streamed answer's chunks to `budgets.stream.StreamCounter` as they pass
  (unchanged, unless the usage it asked for must come out), or reads a whole answer;
- keeps a JSON answer that streams by (sent chunked, or too large to be relayed whole:
  a big embeddings batch) up to `READ_WHOLE_UP_TO`, and `KEPT_AT_ONCE` for all of them
  together, and reads it whole when it ends;
- when the answer has ended, counts it (`budgets.charges.count`), adds that to the
  budgets' counters (`BudgetStore.add`) and notes the tokens and cost for the audit row.

Runs after Scrubber, so its stream wrapper is the outermost one: it sees every chunk
as the upstream sent it, and the end of the stream. Only 2xx answers to requests that
can generate count (`budgets.usage.billed`: not a model list, not a free token count): an error
from the upstream is not billed, and a reservation made for it is given back. Turns
taken over a WebSocket count one by one (ws_budgets.py).
"""

from __future__ import annotations

import time
import weakref

from mitmproxy import http

from firewall.budgets.stream import StreamCounter
from firewall.budgets.usage import Usage, api_of, ask_for_usage, billed, read_answer
from firewall.proxy.bodies import IDENTITY, BodyDecodeError, decode
from firewall.proxy.budget_gate import Charge, charge
from firewall.proxy.budget_store import BudgetStore, Hold
from firewall.proxy.notes import FlowNotes, notes_of
from firewall.proxy.runtime import Runtime

_COUNTER = "firewall-budget-counter"
READ_WHOLE_UP_TO = 16 * 1024 * 1024  # bytes of a streamed JSON answer kept to read its usage; past it: unreadable
KEPT_AT_ONCE = 64 * 1024 * 1024  # bytes all such answers of one proxy process keep together; past it: unreadable


class BudgetMeter:
    def __init__(self, runtime: Runtime, store: BudgetStore):
        self.runtime = runtime
        self.store = store

    def request(self, flow: http.HTTPFlow) -> None:
        notes = notes_of(flow)
        if flow.response is not None or notes.budget_hold is None or notes.decision is None:
            return
        if api_of(notes.decision.canonical_path) != "chat" or "content-encoding" in flow.request.headers:
            return
        changed = ask_for_usage(flow.request.raw_content or b"")
        if changed is not None:
            flow.request.content = changed  # Content-Length follows
            notes.strip_usage = True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        notes = notes_of(flow)
        if notes.budget_hold is None or notes.decision is None or not callable(flow.response.stream):
            return
        api = api_of(notes.decision.canonical_path)
        if api is None or not billed(flow.request.method, notes.decision.canonical_path, flow.response.status_code):
            return
        event_stream = "text/event-stream" in flow.response.headers.get("content-type", "").lower()
        counter: StreamCounter | WholeAnswer
        if event_stream or notes.strip_usage:
            counter = StreamCounter(api, strip=notes.strip_usage)
        else:
            counter = WholeAnswer(api, flow.response.headers.get("content-encoding", ""))
        flow.metadata[_COUNTER] = counter
        inner = flow.response.stream

        def meter(chunk: bytes) -> bytes | list[bytes]:
            out = counter.feed(chunk)
            if chunk:
                return inner(out) if out else []  # an empty chunk would end a chunked body
            parts = _listed(inner(out)) if out else []
            return parts + _listed(inner(b""))  # the end, passed on

        flow.response.stream = meter

    async def response(self, flow: http.HTTPFlow) -> None:
        notes = notes_of(flow)
        if notes.budget_hold is None or flow.response is None:
            return
        usage: Usage | None = None
        path = notes.decision.canonical_path if notes.decision else flow.request.path
        counts = billed(flow.request.method, path, flow.response.status_code)
        counter = flow.metadata.get(_COUNTER)
        api = api_of(path)
        if counter is not None:
            usage = counter.usage()
        elif counts and api is not None and not flow.response.stream:
            body = flow.response.content or b""  # unpacked, as the agent reads it
            usage = read_answer(api, body)
            if notes.strip_usage and usage is not None and b"data:" in body[:64]:
                stripper = StreamCounter(api, strip=True)
                flow.response.content = stripper.feed(body) + stripper.feed(b"")
        await self._settle(flow, notes, usage if counts else None, billed=counts)

    async def error(self, flow: http.HTTPFlow) -> None:
        notes = notes_of(flow)
        if notes.budget_hold is None:
            return
        counter = flow.metadata.get(_COUNTER)  # a stream cut short still used what it used
        await self._settle(flow, notes, counter.usage() if counter else None, billed=counter is not None)

    async def _settle(self, flow: http.HTTPFlow, notes: FlowNotes, usage: Usage | None, *, billed: bool) -> None:
        hold, decision = notes.budget_hold, notes.decision
        notes.budget_hold = None  # counted once, whichever hook comes first
        if not isinstance(hold, Hold) or decision is None:
            return
        if not billed:  # nothing was answered, or an error: no usage, the reservations go back
            await self.store.add(decision.budgets, hold, (0,) * len(hold.reserved), time.time())
            return
        charged = charge(decision, self.runtime.policy.prices, usage, flow.request.raw_content or b"")
        note_charge(notes, charged)
        await self.store.add(decision.budgets, hold, charged.amounts, time.time())


class Keeping:
    """The bytes every `WholeAnswer` of this process keeps, bounded, so that many large answers
    at once cannot take the proxy's memory: an answer that would pass the bound keeps nothing
    and counts as unreadable (`usage unreadable` decides what that costs)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = 0

    def take(self, size: int) -> bool:
        if self.kept + size > self.limit:
            return False
        self.kept += size
        return True

    def give_back(self, kept: list[int]) -> None:
        """Give back what one answer kept (`kept`: its one-item tally, set to 0)."""
        self.kept -= kept[0]
        kept[0] = 0


KEEPING = Keeping(KEPT_AT_ONCE)


class WholeAnswer:
    """A JSON answer that streams by: its chunks pass on untouched and are kept (up to
    `READ_WHOLE_UP_TO`, and within what `keeping` allows all answers together; unpacked at
    the end within the same bound) to be read whole."""

    def __init__(self, api: str, content_encoding: str, keeping: Keeping = KEEPING) -> None:
        self.api = api
        self.content_encoding = content_encoding
        self.keeping = keeping
        self._parts: list[bytes] = []
        self._kept = [0]  # a list, so the finalizer below shares it without holding the answer
        weakref.finalize(self, keeping.give_back, self._kept)  # a flow dropped unread gives back too
        self._unreadable = False
        self._read = False
        self._usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self._unreadable or self._read or not chunk:
            return chunk
        if self._kept[0] + len(chunk) <= READ_WHOLE_UP_TO and self.keeping.take(len(chunk)):
            self._parts.append(chunk)
            self._kept[0] += len(chunk)
        else:
            self._unreadable = True  # too large to read: nothing more is kept
            self._release()
        return chunk

    def usage(self) -> Usage | None:
        """The answer's usage (read once; what was kept is given back); None when it was too
        large, not valid in its encoding, or carries none."""
        if not self._read:
            self._read = True
            if not self._unreadable:
                self._usage = self._read_kept()
            self._release()
        return self._usage

    def _read_kept(self) -> Usage | None:
        body = b"".join(self._parts)
        if self.content_encoding.strip().lower() not in IDENTITY:
            try:
                unpacked = decode(body, self.content_encoding, READ_WHOLE_UP_TO)
            except BodyDecodeError:
                return None
            if not unpacked.complete:
                return None
            body = unpacked.data
        return read_answer(self.api, body)

    def _release(self) -> None:
        self.keeping.give_back(self._kept)
        self._parts.clear()


def note_charge(notes: FlowNotes, charged: Charge) -> None:
    """What an answer used, on its audit row."""
    notes.model = charged.model
    if charged.usage is not None:
        notes.input_tokens, notes.output_tokens = charged.usage.input_tokens, charged.usage.output_tokens
        notes.cached_tokens = charged.usage.cached_tokens
    notes.cost_usd = charged.cost_usd
    if charged.note:
        notes.detail = f"{notes.detail}; {charged.note}" if notes.detail else charged.note


def _listed(chunks: bytes | list[bytes]) -> list[bytes]:
    if isinstance(chunks, bytes):
        return [chunks] if chunks else []
    return chunks
