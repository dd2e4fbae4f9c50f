"""What the first bytes of a tunnel are: each opening an agent can send, and its class.

Every row that must be refused as raw TCP has a benign neighbour that must be read as TLS or
HTTP, so the table fails if the classifier refuses everything or accepts everything.
"""

from __future__ import annotations

import pytest

from firewall.proxy.first_bytes import MAX_BLANK, MAX_REQUEST_LINE, Opening, classify, leading_blank_lines

TLS_HELLO_START = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"

CASES = [
    # TLS: decided once the record header says so; a prefix waits
    (b"", Opening.MORE),
    (b"\x16", Opening.MORE),
    (b"\x16\x03", Opening.MORE),  # two bytes of a ClientHello: wait, never "raw TCP"
    (TLS_HELLO_START[:3], Opening.TLS),
    (TLS_HELLO_START, Opening.TLS),
    (b"\x16\x03\x04", Opening.OTHER),  # no TLS version 3.4
    (b"\x16\x02", Opening.OTHER),
    (b"\x16\x03\x01", Opening.TLS),
    # HTTP: a whole request line
    (b"GET / HTTP/1.1\r\n", Opening.HTTP),
    (b"GET / HTTP/1.1\n", Opening.HTTP),
    (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n{}", Opening.HTTP),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Opening.HTTP),
    (b"\r\nGET / HTTP/1.1\r\n", Opening.HTTP),  # servers skip blank lines before the request line
    (b"\r\n" * (MAX_BLANK // 2) + b"GET / HTTP/1.1\r\n", Opening.HTTP),
    (b"\r\n" * (MAX_BLANK // 2 + 1) + b"GET / HTTP/1.1\r\n", Opening.OTHER),
    # a request line not yet ended waits; one that can no longer be a request line is OTHER
    (b"GET", Opening.MORE),
    (b"GET /", Opening.MORE),
    (b"GET / HTT", Opening.MORE),
    (b"GET / HTTP/1.1\r", Opening.MORE),
    (b"\r\n", Opening.MORE),
    (b"GET / HTTX", Opening.OTHER),
    (b"GET /  HTTP/1.1\r\n", Opening.OTHER),
    (b"GET / HTTP/1.1 extra\r\n", Opening.OTHER),
    (b"GET /\r\n", Opening.OTHER),  # HTTP/0.9 is not relayed
    (b"G" * 33, Opening.OTHER),  # no method is this long
    (b"GET /" + b"a" * MAX_REQUEST_LINE, Opening.OTHER),
    # what raw TCP protocols open with
    (b"PING\r\n", Opening.OTHER),  # Redis inline command
    (b"*1\r\n$4\r\nPING\r\n", Opening.OTHER),  # Redis protocol
    (b"SSH-2.0-OpenSSH_9.2\r\n", Opening.OTHER),
    (b"SSH-2.0-OpenSSH_9.2 exfil\r\n", Opening.OTHER),  # token, space, word: still no request line
    (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", Opening.OTHER),  # PostgreSQL SSLRequest
    (b"EHLO x\r\n", Opening.OTHER),
]


@pytest.mark.parametrize(("data", "expected"), CASES, ids=[repr(data[:24]) for data, _ in CASES])
def test_classify(data: bytes, expected: Opening) -> None:
    assert classify(data) is expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (TLS_HELLO_START, Opening.OTHER),  # TLS inside intercepted TLS is not unwrapped again
        (b"GET / HTTP/1.1\r\n", Opening.HTTP),
        (b"PING\r\n", Opening.OTHER),
    ],
)
def test_classify_inside_tls(data: bytes, expected: Opening) -> None:
    assert classify(data, inside_tls=True) is expected


def test_leading_blank_lines() -> None:
    assert leading_blank_lines(b"\r\n\nGET / HTTP/1.1\r\n") == 3
    assert leading_blank_lines(b"GET / HTTP/1.1\r\n") == 0
