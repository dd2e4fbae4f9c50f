"""Adversarial corpus, paths: spellings that try to reach /admin (blocked) past rules that allow /v1/**.

Policy on the API (localhost:U): `block /admin/**`, `allow GET /v1/**, /public/**`, default block.
Each case sends its request target byte for byte inside a TLS tunnel (a raw socket: no client
normalises it first) and states what must happen: refused with an audit reason, or passed on
with the exact path the upstream must see (always the canonical path the decision was made on).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pytest

from tests.security.support import request_bytes

BLOCKED_BY_RULE = ("block", "rule")
AMBIGUOUS = ("block", "ambiguous_path")
NOT_ALLOWED = ("block", "default_no_rule")


@dataclass(frozen=True)
class PathCase:
    attack: str
    target: str
    refused: tuple[str, str] | None = None  # (audit decision, reason) when the proxy refuses it
    upstream_sees: str | None = None  # the exact target the upstream gets when it passes


CASES = [
    # percent-encoding: single, double, mixed case
    PathCase("an unreserved letter percent-encoded", "/%61dmin/keys", BLOCKED_BY_RULE),
    PathCase("every letter encoded, mixed hex case", "/%61%64%6d%69%6E/keys", BLOCKED_BY_RULE),
    PathCase(
        "mixed-case escapes of an allowed path pass as the plain path", "/v1/%6d%6F%64els", upstream_sees="/v1/models"
    ),
    PathCase("double encoding of a dot", "/v1/%252e%252e/admin/keys", AMBIGUOUS),
    PathCase("double encoding of a slash", "/v1%252fadmin", AMBIGUOUS),
    PathCase("double encoding spelled with escaped hex digits", "/v1/%25%32%66admin", AMBIGUOUS),
    PathCase("an invalid escape", "/v1/%zz/models", AMBIGUOUS),
    PathCase("an IIS-style %u escape", "/v1/%u002e%u002e/admin", AMBIGUOUS),
    # encoded / \ NUL
    PathCase("an encoded slash", "/v1/..%2fadmin/keys", AMBIGUOUS),
    PathCase("an encoded slash, lower case", "/public%2f..%2fadmin", AMBIGUOUS),
    PathCase("an encoded backslash", "/v1/..%5cadmin/keys", AMBIGUOUS),
    PathCase("a raw backslash", "/v1/..\\admin/keys", AMBIGUOUS),
    PathCase("an encoded NUL before an allowed suffix", "/admin/keys%00.json", AMBIGUOUS),
    # dot segments
    PathCase("dot-dot out of an allowed prefix", "/v1/../admin/keys", BLOCKED_BY_RULE),
    PathCase("encoded dot-dot", "/v1/%2e%2e/admin/keys", BLOCKED_BY_RULE),
    PathCase("half-encoded dot-dot", "/v1/.%2E/admin/keys", BLOCKED_BY_RULE),
    PathCase("dot-dot above the root", "/v1/../../admin", AMBIGUOUS),
    PathCase("a single dot segment passes as the plain path", "/v1/./models", upstream_sees="/v1/models"),
    PathCase("a trailing dot segment", "/admin/.", BLOCKED_BY_RULE),
    PathCase("dot-dot after an encoded '?'", "/v1/models%3f/../../admin", BLOCKED_BY_RULE),
    # repeated slashes
    PathCase("repeated slashes around a blocked path", "//admin//keys", BLOCKED_BY_RULE),
    PathCase("repeated slashes in an allowed path pass collapsed", "/v1//models", upstream_sees="/v1/models"),
    # ; parameters
    PathCase("a ;parameter hiding dot-dots (Tomcat strips it)", "/v1/models;/../../admin", AMBIGUOUS),
    PathCase("a ;jsessionid in a blocked segment", "/admin;jsessionid=1/keys", AMBIGUOUS),
    # overlong UTF-8
    PathCase("overlong 2-byte dots", "/v1/%c0%ae%c0%ae/admin", AMBIGUOUS),
    PathCase("an overlong 2-byte slash", "/v1%c0%afadmin", AMBIGUOUS),
    PathCase("overlong 3-byte dots", "/v1/%e0%80%ae%e0%80%ae/admin", AMBIGUOUS),
    # case games: paths are case-sensitive; an allow list stays closed to other spellings
    PathCase("upper-case blocked area (IIS would serve /admin)", "/ADMIN/keys", NOT_ALLOWED),
    PathCase("upper-case allowed prefix is not the allowed prefix", "/V1/models", NOT_ALLOWED),
    # a fragment, which no client sends
    PathCase("a fragment hiding dot-dots", "/v1/models#/../../admin", AMBIGUOUS),
    # what the query holds is not the path
    PathCase(
        "dot-dots in the query stay in the query",
        "/v1/models?next=/../admin",
        upstream_sees="/v1/models?next=/../admin",
    ),
    # non-ASCII
    PathCase("raw UTF-8 is percent-encoded once", "/v1/mödels", upstream_sees="/v1/m%C3%B6dels"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.attack for c in CASES])
def test_path_attack(corpus, case: PathCase):
    before = len(corpus.upstream.seen)
    reply = corpus.agent.https(corpus.api, request_bytes("GET", case.target, corpus.api))
    reached = [seen.path for seen in corpus.upstream.seen[before:]]
    if case.refused:
        assert reply.status == 403, (reply.status, reply.body)
        assert reached == []
        row = corpus.row(reply)
        assert (row["decision"], row["reason"]) == case.refused
    else:
        assert reply.status == 200, (reply.status, reply.body)
        assert reached == [case.upstream_sees]


def test_a_blocked_path_through_curl_with_path_as_is(corpus):
    """curl normalises dot segments unless --path-as-is; with it, the proxy still decides canonically."""
    import subprocess

    before = len(corpus.upstream.seen)
    done = subprocess.run(
        [
            "curl",
            "-s",
            "--path-as-is",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            str(corpus.agent.ca),
            "-x",
            f"http://attacker:{corpus.agent.token}@127.0.0.1:{corpus.proxy.port}",
            f"https://{corpus.api}/v1/../admin/keys",
            f"https://{corpus.api}/v1/%2e%2e/admin/keys",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout == "403403", done.stderr
    assert corpus.upstream.seen[before:] == []


def test_the_same_attacks_from_httpx_under_firewall_run(corpus, tmp_path):
    """A real client started by the real CLI: what reaches the upstream is what the decision allowed."""
    script = tmp_path / "paths.py"
    script.write_text(
        "import httpx, json, sys\n"
        "base = sys.argv[1]\n"
        "out = {}\n"
        "with httpx.Client() as client:\n"
        "    for path in sys.argv[2:]:\n"
        "        url = httpx.URL(base, raw_path=path.encode())\n"
        "        out[path] = client.get(url).status_code\n"
        "print(json.dumps(out))\n"
    )
    paths = ["/v1/models", "/%61dmin/keys", "/v1/%2e%2e/admin/keys", "/v1/..%2fadmin", "//admin", "/ADMIN/keys"]
    before = len(corpus.upstream.seen)
    done = corpus.firewall.run(
        "run", "--agent", "attacker", "--", sys.executable, str(script), f"https://{corpus.api}", *paths
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "/v1/models": 200,
        "/%61dmin/keys": 403,
        "/v1/%2e%2e/admin/keys": 403,
        "/v1/..%2fadmin": 403,
        "//admin": 403,
        "/ADMIN/keys": 403,
    }
    assert [seen.path for seen in corpus.upstream.seen[before:]] == ["/v1/models"]
