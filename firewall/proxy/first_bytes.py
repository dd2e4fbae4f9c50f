"""What the first bytes of a CONNECT tunnel carry: TLS, HTTP, not enough yet to tell, or neither.

Pure, and strict where mitmproxy guesses: mitmproxy calls three bytes that do not
look like a request line "raw TCP" and relays them (so a ClientHello sent two bytes
at a time, or an HTTP request after a blank line, went through undecided). Here a
tunnel is HTTP only once its first line is a whole request line, TLS only once the
record header says so, and anything that cannot still become one of them is OTHER:
the policy then decides it as raw TCP (`allow tcp`), which it refuses by default.
"""

from __future__ import annotations

import re
from enum import Enum


class Opening(Enum):
    TLS = "tls"
    HTTP = "http"
    MORE = "more"  # a prefix of TLS or of a request line: wait for more bytes
    OTHER = "other"


MAX_BLANK = 64  # CR/LF bytes tolerated before a request line (RFC 9112, 2.2: "at least one")
MAX_REQUEST_LINE = 16 * 1024

_TCHAR = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_REQUEST_LINE = re.compile(_TCHAR + rb"{1,32} [^ \r\n]+ HTTP/\d\.\d\r?\n")
# Every prefix of a request line (the line not yet ended).
_REQUEST_LINE_START = re.compile(
    _TCHAR
    + rb"{0,32}|"
    + _TCHAR
    + rb"{1,32} [^ \r\n]*|"
    + _TCHAR
    + rb"{1,32} [^ \r\n]+ (H(T(T(P(/(\d(\.(\d\r?)?)?)?)?)?)?)?)?"
)


def classify(data: bytes, *, inside_tls: bool = False) -> Opening:
    """What `data`, the first bytes an agent sent into a tunnel, is. `inside_tls`: the proxy
    already took the agent's TLS, so these are the bytes inside it (TLS again is OTHER)."""
    if data[:1] == b"\x16":
        if inside_tls:
            return Opening.OTHER
        if len(data) < 3:
            return Opening.MORE if data[1:2] in (b"", b"\x03") else Opening.OTHER
        return Opening.TLS if data[1] == 0x03 and data[2] <= 0x03 else Opening.OTHER
    line = data.lstrip(b"\r\n")
    if len(data) - len(line) > MAX_BLANK:
        return Opening.OTHER
    end = line.find(b"\n")
    if end < 0:
        if len(line) > MAX_REQUEST_LINE:
            return Opening.OTHER
        return Opening.MORE if _REQUEST_LINE_START.fullmatch(line) else Opening.OTHER
    return Opening.HTTP if _REQUEST_LINE.fullmatch(line[: end + 1]) else Opening.OTHER


def leading_blank_lines(data: bytes) -> int:
    """How many CR/LF bytes come before the request line (servers skip them; so does the proxy)."""
    return len(data) - len(data.lstrip(b"\r\n"))
