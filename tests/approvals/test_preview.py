"""What a person is shown of a held request: fields that matter first, credentials masked, short."""

from __future__ import annotations

import json

import pytest

from firewall.approvals.preview import PREVIEW_LIMIT, BoundRequest, body_preview, display_url
from firewall.approvals.preview import fingerprint as bound_fingerprint
from firewall.redaction import SecretIndex

VAULT = SecretIndex.build({"openai": "sk-proj-VAULTVALUE0123456789"}).redact


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"", None, "(no body)"),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8000, "model": "gpt-4o"}
            ).encode(),
            "application/json",
            '{"model": "gpt-4o", "max_tokens": 8000, "messages": [1 item]} (88 bytes)',
        ),
        (
            b'{"training_file": "file-abc", "hyperparameters": {"n_epochs": 3}, "suffix": null}',
            "application/json",
            '{"training_file": "file-abc", "hyperparameters": {1 field}, "suffix": null} (81 bytes)',
        ),
        (
            b'{"api_key": "hunter2", "note": "sk-abcdefghijklmnop", "text": "uses sk-proj-VAULTVALUE0123456789"}',
            None,
            '{"api_key": "****", "note": "****", "text": "****"} (98 bytes)',
        ),
        (b"[1, 2, 3]", "application/json", "[3 items] (9 bytes)"),
        (b"hello\nworld", "text/plain; charset=utf-8", '11 bytes of text/plain: "hello\\nworld"'),
        (b"\xff\xfe\x00\x01", "application/octet-stream", "4 bytes of application/octet-stream"),
    ],
)
def test_body_preview(body, content_type, expected):
    assert body_preview(body, content_type, VAULT) == expected


def test_long_strings_and_long_previews_are_cut():
    body = json.dumps({"model": "m" * 100, **{f"field{i}": i for i in range(100)}}).encode()
    text = body_preview(body, "application/json")
    assert text.startswith('{"model": "' + "m" * 39 + '…", "field0": 0')
    assert len(text) == PREVIEW_LIMIT and text.endswith("…")


def test_a_body_too_large_is_not_parsed():
    assert (
        body_preview(b"x" * (2 * 1024 * 1024), "application/json")
        == "2097152 bytes of application/json (too large to preview)"
    )


def test_display_url_masks_credential_looking_query_values_and_default_ports():
    assert (
        display_url("https", "api.example.com", 443, "/v1/x", "key=abc&q=cats&t=sk-proj-VAULTVALUE0123456789", VAULT)
        == "https://api.example.com/v1/x?key=****&q=cats&t=****"
    )
    assert display_url("https", "localhost", 8443, "/v1/x", "") == "https://localhost:8443/v1/x"
    assert display_url("http", "example.com", 80, "/", "") == "http://example.com/"


HEADERS = (("Host", "api.example.com"), ("Content-Type", "application/json"), ("Content-Length", "8"))


def fingerprint(*parts) -> str:
    """The fingerprint of the request of these parts (BoundRequest's fields, in order)."""
    return bound_fingerprint(BoundRequest(*parts))


def test_fingerprint_changes_with_every_part_of_the_request():
    base = ("ci", "POST", "https", "api.example.com", 443, "/v1/x", "a=1", b'{"n": 1}', HEADERS)
    first = fingerprint(*base)
    assert fingerprint(*base) == first
    assert fingerprint("ci", "post", "https", "API.example.com", 443, "/v1/x", "a=1", b'{"n": 1}', HEADERS) == first
    for index, other in [
        (0, "cd"),
        (1, "PUT"),
        (3, "api.example.org"),
        (4, 8443),
        (5, "/v1/y"),
        (6, "a=2"),
        (7, b'{"n": 2}'),
        (8, HEADERS[1:]),
    ]:
        changed = list(base)
        changed[index] = other
        assert fingerprint(*changed) != first, index


@pytest.mark.parametrize(
    ("attack", "headers"),
    [
        ("a method override added", HEADERS + (("X-HTTP-Method-Override", "DELETE"),)),
        ("a header the upstream acts on added", HEADERS + (("OpenAI-Organization", "org-other"),)),
        (
            "a header's value changed",
            (("Host", "api.example.com"), ("Content-Type", "text/plain"), ("Content-Length", "8")),
        ),
        ("a header repeated", HEADERS + (("Content-Type", "application/json"),)),
        ("headers reordered", (HEADERS[1], HEADERS[0], HEADERS[2])),
        ("a header removed", HEADERS[1:]),
    ],
)
def test_an_approval_is_bound_to_every_header_that_goes_upstream(attack, headers):
    base = ("ci", "POST", "https", "api.example.com", 443, "/v1/x", "", b'{"n": 1}')
    assert fingerprint(*base, headers) != fingerprint(*base, HEADERS), attack


@pytest.mark.parametrize(
    ("control", "headers"),
    [
        ("header names in another case", tuple((name.upper(), value) for name, value in HEADERS)),
        ("proxy credentials, which never go upstream", HEADERS + (("Proxy-Authorization", "Basic Y2k6dG9rZW4="),)),
        ("Content-Length left out (HTTP/2): the body is bound", HEADERS[:2]),
        (
            "a fresh trace id and SDK retry counter on a retry",
            HEADERS
            + (
                ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                ("X-Stainless-Retry-Count", "1"),
            ),
        ),
    ],
)
def test_headers_left_out_of_the_fingerprint_are_only_the_volatile_ones(control, headers):
    base = ("ci", "POST", "https", "api.example.com", 443, "/v1/x", "", b'{"n": 1}')
    assert fingerprint(*base, headers) == fingerprint(*base, HEADERS), control


def test_one_minimum_length_a_short_vault_value_is_neither_indexed_nor_masked():
    """A value shorter than MIN_SECRET_CHARS would match ordinary text; the guard does not look
    for it, and redaction does not pretend to hide it (docs/vault.md says to use real keys)."""
    redact = SecretIndex.build({"short": "abc123"}).redact
    assert body_preview(b'{"text": "abc123"}', "application/json", redact) == '{"text": "abc123"} (18 bytes)'
