"""What goes into the decision engine and what comes out of it.

Plain frozen data: the proxy builds a `Request`, `decide()` returns a
`Decision`, the audit log stores the decision's fields as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit


class Verdict(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    APPROVE = "approve"


class Mode(StrEnum):
    ENFORCE = "enforce"
    REPORT = "report"


class Reason(StrEnum):
    """The fixed reason of every branch of `decide()`; logged and asserted as is."""

    RULE = "rule"  # a rule of the request's host block decided
    DEFAULT_NO_HOST = "default_no_host"  # no host block names the destination
    DEFAULT_NO_RULE = "default_no_rule"  # the host block has no rule for the request
    AMBIGUOUS_PATH = "ambiguous_path"  # the path has no single meaning (encoded '/', '..' above root, ...)
    AMBIGUOUS_BODY = "ambiguous_body"  # a JSON body a condition reads repeats a key in one object
    METHOD_OVERRIDE = "method_override"  # X-HTTP-Method-Override, _method, ... names another method
    INVALID_HOST = "invalid_host"  # the destination is not a well-formed host name or address
    DESTINATION_MISMATCH = "destination_mismatch"  # Host header, SNI or :authority names another destination
    PRIVATE_ADDRESS = "private_address"  # resolves to a non-public address no host block names exactly
    PLAIN_HTTP_CREDENTIAL = "plain_http_credential"  # plain HTTP to a block that injects a credential
    MALFORMED_REQUEST = "malformed_request"  # method or target the engine cannot read
    UNSAFE_METHOD = "unsafe_method"  # TRACE or TRACK: the server echoes the request, credentials included
    EXFILTRATION = "exfiltration"  # carries a vault secret the decision does not inject for this request
    NOT_HTTP = "not_http"  # a tunnel that does not carry HTTP(S), to a host:port no `allow tcp` names


TUNNEL_METHOD = "TCP"  # the method of a `Request` that is a raw TCP tunnel (scheme "tcp")


@dataclass(frozen=True)
class Request:
    """One outgoing request, as the proxy saw it.

    `target` is the request target as sent: path plus optional `?query`.
    `body` is at most the inspection limit; `body_size` is the real size and
    `body_complete` says whether `body` holds all of it.

    `host`/`port` are where the connection really goes (the CONNECT target, or
    the URL of a plain-HTTP proxy request). `claimed` lists what else named a
    destination (the Host header, `:authority`, the TLS SNI) as "host[:port]";
    `addresses` are the IPs the proxy resolved `host` to and will connect to.
    `secrets` names the vault entries whose values the request carries anywhere
    (target, headers, body), as found by `firewall.redaction`.

    A CONNECT tunnel whose bytes are neither TLS nor HTTP is decided as a request of
    scheme "tcp" and method TCP, with an empty target.
    """

    method: str
    scheme: str
    host: str
    port: int
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    body_size: int = 0
    body_complete: bool = True
    agent: str | None = None
    claimed: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()

    @classmethod
    def from_url(
        cls,
        method: str,
        url: str,
        *,
        agent: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Request:
        """A request for tests and `policy explain`: `https://host[:port]/path?query`, or a raw
        TCP tunnel as `TCP tcp://host:port`."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss", "tcp"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}; use http://, https:// or tcp://")
        if not parts.hostname:
            raise ValueError(f"URL {url!r} has no host")
        if (scheme == "tcp") != (method.upper() == TUNNEL_METHOD):
            raise ValueError(f"a raw TCP tunnel is written {TUNNEL_METHOD} tcp://HOST:PORT, not {method} {url}")
        if scheme == "tcp":
            if parts.port is None or parts.path not in ("", "/") or parts.query:
                raise ValueError(f"{url!r}: a tcp:// URL is tcp://HOST:PORT, with a port and nothing after it")
            return cls(TUNNEL_METHOD, "tcp", parts.hostname, parts.port, "", agent=agent)
        port = parts.port or (443 if scheme in ("https", "wss") else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return cls(
            method=method.upper(),
            scheme="https" if scheme in ("https", "wss") else "http",
            host=parts.hostname,
            port=port,
            target=target,
            headers=headers,
            body=body,
            body_size=len(body),
            agent=agent,
        )

    @classmethod
    def with_json(
        cls,
        method: str,
        url: str,
        payload: object,
        *,
        agent: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        body = json.dumps(payload).encode()
        headers = tuple(headers) + (("content-type", "application/json"),)
        return cls.from_url(method, url, agent=agent, headers=headers, body=body)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class RuleRef:
    """Where a rule, limit or line of policy source is: for logs and explanations."""

    file: str  # relative to the policy's folder, so the name does not depend on the working folder
    line: int
    text: str
    name: str = ""  # the rule's `as "name"`, if it has one

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def id(self) -> str:
        """The rule's stable name, as grants and the audit log know it: its `as "name"`, else file:line."""
        return self.name or self.location


@dataclass(frozen=True)
class LimitRef:
    """A limit the proxy must count this request against.

    `key` identifies the counter (stable across policy versions as long as the
    limit keeps its host block and text); `agent` is set when the limit counts
    per agent, so the counter key is (key, agent).
    """

    key: str
    amount: int
    period: str  # "second" | "minute" | "hour" | "day"
    agent: str | None
    source: RuleRef


@dataclass(frozen=True)
class BudgetRef:
    """A budget this request counts against (docs/budgets.md).

    `key` names the counter (with `agent` when it counts per agent); `amount` is in
    tokens, or millionths of a dollar when `measure` is "usd". The proxy checks the
    counter before the request goes out and adds what the answer used after it.
    """

    key: str
    amount: int
    measure: str  # usd | tokens | input_tokens | output_tokens | cached_tokens
    period: str  # hour | day | week | month
    agent: str | None
    source: RuleRef
    reserve: bool = False
    unreadable: str = "max_tokens"  # the host block's `usage unreadable` setting


PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Injection:
    """One credential to add: where it goes and the template its value fills.

    `kind` is "header", "query" or "oauth"; for oauth the proxy sets the
    Authorization and account headers from the refreshed token.
    """

    credential: str
    secret: str  # vault entry name
    kind: str
    name: str  # header or query parameter name ("" for oauth)
    template: str  # contains "{secret}" ("" for oauth)
    settings: tuple[tuple[str, str], ...] = ()  # oauth: token_url, client_id, ...


@dataclass(frozen=True)
class Decision:
    """What the engine decided, and why.

    `verdict` is what the proxy enforces. Under `mode report`, `verdict` is
    ALLOW and `would` holds what an enforcing policy would have done.

    `needs_addresses` marks a partial answer: the request was let through on its
    name, and the addresses the name resolves to (not given) may still refuse it
    (`private_address`). Its verdict holds only if they are public: resolve the
    name and decide again with `Request.addresses`. Never set on a block, nor for
    an address literal.
    """

    verdict: Verdict
    reason: Reason
    rule: RuleRef | None = None
    rule_reason: str | None = None  # the rule's own `reason "..."`
    message: str = ""
    limits: tuple[LimitRef, ...] = ()
    budgets: tuple[BudgetRef, ...] = ()
    inject: tuple[Injection, ...] = ()
    would: Verdict | None = None
    mode: Mode = Mode.ENFORCE
    canonical_path: str = ""
    query: str = ""
    host: str = ""
    policy_sha256: str = ""
    approval_timeout: float = 120.0
    host_block: RuleRef | None = None
    needs_addresses: bool = False
