"""Properties under random input.

1. Parsing and compiling any text returns a policy or raises `PolicyError`;
   nothing else escapes (random text, random token soup, and corpus policies
   with characters and tokens deleted, inserted, duplicated and swapped).
   Whatever parses, `policy fmt` formats to text that parses to the same layout.
2. `firewall policy check` on mutated files exits 0 or 2 without a traceback,
   naming the files in its errors.
3. A path written with traversal and encoding tricks gets the decision of the
   path it stands for, and an ambiguous one is blocked as ambiguous_path.
4. The engine's shortcuts for path globs (a literal-prefix check before the
   regex) match exactly what the glob matches.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firewall.policy import PolicyError, Reason, Request, Verdict, compile_source, decide
from firewall.policy.compiled import RequestMatcher, path_glob
from firewall.policy.formatter import format_policy
from firewall.policy.parser import parse_policy

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAVY_PROPERTY = settings(PROPERTY, max_examples=150)  # each example compiles a whole policy file
CORPUS = Path(__file__).parent / "corpus"
REPO = Path(__file__).parents[2]
SOURCES = [path.read_text(encoding="utf-8") for path in sorted(CORPUS.glob("*.policy"))]
SOURCES += [path.read_text(encoding="utf-8") for path in sorted((REPO / "policies").glob("*.policy"))]

TOKENS = [
    "default",
    "mode",
    "report",
    "enforce",
    "approval",
    "timeout",
    "5m",
    "credential",
    "secret",
    "header",
    "query",
    "oauth",
    "token_url",
    "host",
    "inject",
    "limit",
    "per",
    "agent",
    "minute",
    "allow",
    "block",
    "approve",
    "when",
    "reason",
    "and",
    "or",
    "not",
    "in",
    "matches",
    "test",
    "expect",
    "as",
    "json",
    "after",
    "requests",
    "GET",
    "POST",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "=",
    "==",
    "!=",
    "<",
    ">=",
    "#",
    "\n",
    '"',
    '"x"',
    "1",
    "-1",
    "1.5",
    "true",
    "null",
    "a.com",
    "*.a.com",
    "localhost:8443",
    "/v1/**",
    "/v1/*/x",
    "json.model",
    "query.q",
    "header.X",
    "body.size",
    "https://a.com/v1",
    "{secret}",
    '"Bearer {secret}"',
]


def compiles_or_refuses(text: str) -> None:
    """Compile `text`; a `PolicyError` is a fine answer, any other exception fails the test."""
    try:
        compile_source(text, "fuzz.policy")
    except PolicyError:
        pass


def formats_stably(text: str) -> None:
    """If `text` parses, its formatted form parses and formats to itself."""
    try:
        tree = parse_policy(text, "fuzz.policy")
    except PolicyError:
        return
    formatted = format_policy(tree)
    assert format_policy(parse_policy(formatted, "fuzz.policy")) == formatted


def mutate(source: str, edits: list[tuple[str, float, float, str]]) -> str:
    """Apply edits (kind, where, where_else, token) at relative positions of `source`."""
    text = source
    for kind, where, where_else, token in edits:
        if not text:
            return token
        at, other = int(where * len(text)), int(where_else * len(text))
        if kind == "delete":
            text = text[:at] + text[at + 1 :]
        elif kind == "insert":
            text = text[:at] + token + text[at:]
        elif kind == "duplicate":
            text = text[:at] + text[at : other + 1] + text[at:]
        elif kind == "swap":
            low, high = sorted((at, min(other, len(text) - 1)))
            text = text[:low] + text[high] + text[low + 1 : high] + text[low] + text[high + 1 :]
        elif kind == "delete-token":
            words = re.split(r"(\s+)", text)
            del words[int(where * len(words))]
            text = "".join(words)
        else:  # swap-token
            words = re.split(r"(\s+)", text)
            i, j = int(where * len(words)), int(where_else * len(words))
            words[i], words[j] = words[j], words[i]
            text = "".join(words)
    return text


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "duplicate", "swap", "delete-token", "swap-token"]),
        st.floats(0, 1, exclude_max=True),
        st.floats(0, 1, exclude_max=True),
        st.sampled_from(TOKENS),
    ),
    min_size=1,
    max_size=6,
)


@PROPERTY
@given(st.text(max_size=300))
def test_random_text_compiles_or_raises_a_policy_error(text):
    compiles_or_refuses(text)


@PROPERTY
@given(st.lists(st.sampled_from(TOKENS), max_size=60), st.sampled_from([" ", "\n"]))
def test_random_tokens_compile_or_raise_a_policy_error(tokens, separator):
    text = separator.join(tokens)
    compiles_or_refuses(text)
    formats_stably(text)


@HEAVY_PROPERTY
@given(st.sampled_from(SOURCES), EDITS)
def test_mutated_policies_compile_or_raise_a_policy_error(source, edits):
    text = mutate(source, edits)
    compiles_or_refuses(text)
    formats_stably(text)


def test_policy_check_on_mutated_files_exits_cleanly(tmp_path):
    rng = random.Random(20261122)
    kinds = ["delete", "insert", "duplicate", "swap", "delete-token", "swap-token"]
    paths = []
    for index, source in enumerate(rng.sample(SOURCES, 4)):
        edits = [(rng.choice(kinds), rng.random(), rng.random(), rng.choice(TOKENS)) for _ in range(3)]
        paths.append(tmp_path / f"mutated-{index}.policy")
        paths[-1].write_text(mutate(source, edits), encoding="utf-8")
    process = subprocess.run(
        [sys.executable, "-m", "firewall", "policy", "check", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode in (0, 2), process.stderr
    assert "Traceback" not in process.stderr
    if process.returncode == 2:
        assert process.stderr.startswith(str(tmp_path))
        assert process.stderr.endswith("; the policy was not compiled\n")


# ---- paths ------------------------------------------------------------------

POLICY = compile_source(
    """
host api.example.com {
    block /v1/files/**
    block POST /v1/images/*
    allow GET /v1/**
    allow POST /v1/chat/*, /v1/images
}
""",
    "paths.policy",
).policy

SEGMENTS = st.lists(
    st.sampled_from(["v1", "V1", "files", "images", "chat", "models", "a-b_c.d~e"]), min_size=0, max_size=5
)


def decision_of(method: str, path: str) -> tuple:
    decision = decide(POLICY, Request.from_url(method, "https://api.example.com" + path), 0.0)
    return decision.verdict, decision.reason, decision.rule.line if decision.rule else None


@st.composite
def equivalent_spelling(draw, segments: list[str]) -> str:
    """`segments` as a path, with dot segments, repeated slashes and escapes of
    unreserved characters that canonicalisation undoes."""
    parts = []
    for segment in segments:
        detour = draw(st.sampled_from(["", "./", "/", "junk/../", "%2e/", "x/%2E%2e/"]))
        spelled = "".join(
            f"%{ord(char):02{draw(st.sampled_from(['X', 'x']))}}" if draw(st.booleans()) else char for char in segment
        )
        parts.append(detour + spelled)
    trailing = draw(st.sampled_from(["", "/", "/.", "//"])) if segments else ""
    return "/" + "/".join(parts) + trailing


@PROPERTY
@given(st.data(), SEGMENTS, st.sampled_from(["GET", "POST", "DELETE"]))
def test_an_equivalent_spelling_gets_the_decision_of_the_plain_path(data, segments, method):
    tricky = data.draw(equivalent_spelling(segments))
    assert decision_of(method, tricky) == decision_of(method, "/" + "/".join(segments))


AMBIGUOUS_PIECES = [
    "%2F",
    "%2f",
    "%5C",
    "%5c",
    "%00",
    ";",
    ";jsessionid=1",
    "%252F",
    "%25%32%46",
    "%",
    "%zz",
    "%C0%AF",
    "\\",
]


@PROPERTY
@given(SEGMENTS, st.integers(0, 5), st.sampled_from(AMBIGUOUS_PIECES), st.sampled_from(["GET", "POST"]))
def test_an_ambiguous_spelling_is_blocked_as_ambiguous(segments, where, piece, method):
    parts = [*segments]
    at = min(where, len(parts))
    parts.insert(at, "files" + piece if where % 2 else piece + "files")
    path = "/" + "/".join(parts)
    assert decision_of(method, path) == (Verdict.BLOCK, Reason.AMBIGUOUS_PATH, None)


@PROPERTY
@given(st.text(alphabet="/.%2eEfF5cC;a~", max_size=30), st.sampled_from(["GET", "POST"]))
def test_any_path_decides_as_its_canonical_form_or_is_ambiguous(noise, method):
    path = "/" + noise
    decision = decide(POLICY, Request.from_url(method, "https://api.example.com" + path), 0.0)
    if decision.reason is Reason.AMBIGUOUS_PATH:
        assert decision.verdict is Verdict.BLOCK
    else:
        assert decision_of(method, decision.canonical_path) == decision_of(method, path)


GLOB_SEGMENTS = st.lists(st.sampled_from(["v1", "v1x", "models", "*", "**", "gpt-*", "*-mini", "a"]), max_size=4)
PATH_SEGMENTS = st.lists(st.sampled_from(["v1", "v1x", "models", "gpt-4o", "gpt-", "o3-mini", "a", ""]), max_size=5)


@PROPERTY
@given(GLOB_SEGMENTS, st.booleans(), PATH_SEGMENTS)
def test_the_prefix_shortcut_matches_what_the_glob_matches(glob_segments, trailing_slash, path_segments):
    glob = "/" + "/".join(glob_segments) + ("/" if trailing_slash and glob_segments else "")
    path = "/" + "/".join(path_segments)
    try:
        expected = path_glob(glob).matches(path)
    except ValueError:  # not a valid glob ("**" inside a segment, "//"): nothing to compare
        return
    assert RequestMatcher((), (glob,), None).matches_method_and_path("GET", path) == expected
