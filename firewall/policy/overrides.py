"""Method overrides: a request that asks the server to act as another method than it is sent with.

Frameworks let a POST stand for another method: Google APIs, ASP.NET and the
`method-override` middleware read the headers `X-HTTP-Method-Override`,
`X-HTTP-Method` and `X-Method-Override`; Rails (Rack), Laravel, Symfony and
Express read a `_method` parameter in the query or in a form body. A server
that honours one acts on its value; one that does not acts on the method sent.
A policy decides on one method, so such a request has no single meaning to it:
the engine refuses it (reason `method_override`), unless every override names
the method the request is sent with (which changes nothing).

A form body the engine cannot read in full (over the inspection limit, or
content-encoded) may hide a `_method`: a `application/x-www-form-urlencoded`
one is refused; of a multipart body the readable start is searched, and a
part named `_method` there is refused whatever its value.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from firewall.policy.decision import Request

HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")
PARAMETER = "_method"
_FORM = "application/x-www-form-urlencoded"
_MULTIPART_PART = re.compile(
    rb'content-disposition:[^\r\n]*\bname\s*=\s*"?_method"?(?:[;\s]|$)', re.IGNORECASE | re.MULTILINE
)


def method_override(request: Request, query: str) -> str | None:
    """Why `request` asks to be read as another method, or None when it does not."""
    sent = request.method
    for name, value in request.headers:
        if name.lower() in HEADERS and value.strip().upper() != sent:
            return _refusal(f"the header {name}: {value.strip()[:20]!r}", sent)
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == PARAMETER and value.strip().upper() != sent:
            return _refusal(f"the query parameter {PARAMETER}={value.strip()[:20]!r}", sent)
    # Every Content-Type the request has: servers disagree on which of two counts.
    types = {value.split(";")[0].strip().lower() for name, value in request.headers if name.lower() == "content-type"}
    if _FORM in types:
        if not request.body_complete:
            return (
                f"a {sent} with a form body the firewall cannot read in full may carry {PARAMETER}, which "
                f"asks the server to act as another method; send the form smaller or uncompressed"
            )
        for key, value in parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True):
            if key == PARAMETER and value.strip().upper() != sent:
                return _refusal(f"the form field {PARAMETER}={value.strip()[:20]!r}", sent)
    if any(kind.startswith("multipart/") for kind in types) and _MULTIPART_PART.search(request.body):
        return _refusal(f"a multipart part named {PARAMETER}", sent)
    return None


def _refusal(what: str, sent: str) -> str:
    return (
        f"{what} asks the server to act as another method than {sent}, which the policy cannot decide "
        f"on; send the request with the method it means"
    )
