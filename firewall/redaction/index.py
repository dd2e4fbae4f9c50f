"""Finding the vault's secret values in what an agent sends, and masking them in what it receives.

Pure: `SecretIndex.build(values)` is called once per vault change with every
entry's value; `find()` then says which entries a request carries, in any of
the forms a naive exfiltration uses:

- the value as is, also split by whitespace or line breaks;
- percent-encoded, wholly or in part, in either hex case, once or twice;
- JSON-escaped (`\\u0073k-…`, `\\/`);
- base64, standard or URL-safe alphabet, at each of the 3 byte alignments
  (so the value is found inside a longer encoded blob such as Basic auth);
- hex, in lower or upper case.

A value of 32 characters or more is also found by any 16-character window
(fragments.py), also when its pieces are spread over the JSON string values or
the form values of one part, in order (fields.py).

A value shorter than `MIN_SECRET_CHARS` is not indexed: it would match
ordinary text. A value that is a JSON object (an OAuth login) is indexed by
its token-like string fields, which are what travels on the wire.

`masker(names)` gives the `Masker` (masker.py) for the entries injected into
one request; `redact(text)` masks every form of every entry in text written
down (logs, audit rows, approval previews).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes, unquote_to_bytes

from firewall.redaction.anchored import MIN_ANCHORED, Anchored
from firewall.redaction.fields import joined_fields
from firewall.redaction.fragments import FragmentIndex
from firewall.redaction.masker import Masker

MIN_SECRET_CHARS = 8
MASK = "****"  # what a secret (or a value that looks like one) is replaced by in text
_TOKEN_FIELD = re.compile(r"token|key|secret|password", re.I)
_WHITESPACE = b" \t\r\n\x0b\x0c"
_JSON_ESCAPE = re.compile(rb"\\u([0-9a-fA-F]{4})|\\([/nrtbf\"\\\\])")


def secret_values(value: str) -> tuple[str, ...]:
    """The strings of one vault value that must never leave except where injected."""
    text = value.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict):
            return tuple(dict.fromkeys(v for v in _token_fields(document) if len(v) >= MIN_SECRET_CHARS))
    return (value,) if len(value) >= MIN_SECRET_CHARS else ()


def _token_fields(node: object, key: str = "") -> Iterable[str]:
    if isinstance(node, dict):
        for name, child in node.items():
            yield from _token_fields(child, str(name))
    elif isinstance(node, list):
        for child in node:
            yield from _token_fields(child, key)
    elif isinstance(node, str) and _TOKEN_FIELD.search(key):
        yield node


def base64_cores(raw: bytes) -> tuple[bytes, ...]:
    """The base64 characters that depend on `raw` alone, at each of the 3 alignments,
    in the standard and the URL-safe alphabet."""
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).rstrip(b"=")
        first = -(-8 * offset // 6)  # the first character no prefix bit reaches
        last = 8 * (offset + len(raw)) // 6  # characters after this one mix in padding bits
        core = encoded[first:last]
        cores.append(core)
        cores.append(core.translate(_URLSAFE))
    return tuple(dict.fromkeys(cores))


_URLSAFE = bytes.maketrans(b"+/", b"-_")


@dataclass(frozen=True)
class SecretForms:
    """One secret string of one vault entry, in every form the index looks for."""

    name: str  # the vault entry
    raw: bytes
    base64: tuple[bytes, ...]
    hex: bytes  # lower case

    @classmethod
    def of(cls, name: str, value: str) -> SecretForms:
        raw = value.encode("utf-8")
        return cls(name, raw, base64_cores(raw), raw.hex().encode())

    def masked_forms(self) -> tuple[bytes, ...]:
        """What a response may echo: every form, percent-encoding in both hex cases."""
        percent = quote_from_bytes(self.raw, safe="").encode()
        forms = {
            self.raw,
            percent,
            percent.lower(),
            self.raw.replace(b"/", b"\\/"),
            self.hex,
            self.hex.upper(),
            *self.base64,
        }
        return tuple(sorted(forms, key=len, reverse=True))


@dataclass(frozen=True)
class SecretIndex:
    """Every secret string of the vault, by entry; build once per vault change."""

    forms: tuple[SecretForms, ...] = ()
    fragments: FragmentIndex = field(default_factory=FragmentIndex, repr=False, compare=False)
    # `find`'s tables: the raw and base64 forms, the hex (lower case), and forms too short to anchor.
    _text: Anchored = field(default_factory=Anchored, repr=False, compare=False)
    _hex: Anchored = field(default_factory=Anchored, repr=False, compare=False)
    _short: tuple[tuple[bytes, str], ...] = field(default=(), repr=False, compare=False)
    _redactor: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    # Maskers by entry names: building one (its pattern, every prefix of every form) for each
    # response cost more than masking the response. A Masker is immutable, so it is shared.
    _maskers: dict[frozenset[str], Masker] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, values: Mapping[str, str]) -> SecretIndex:
        forms = tuple(
            SecretForms.of(name, text) for name, value in sorted(values.items()) for text in secret_values(value)
        )
        redactor = None
        if forms:
            texts = {f.decode("utf-8", "replace") for entry in forms for f in entry.masked_forms()}
            redactor = re.compile("|".join(re.escape(t) for t in sorted(texts, key=len, reverse=True)))
        fragments = FragmentIndex.build((entry.name, entry.raw.decode("utf-8")) for entry in forms)
        text: dict[bytes, set[str]] = {}
        short: set[tuple[bytes, str]] = set()
        for entry in forms:
            for form in (entry.raw, *entry.base64):
                if len(form) >= MIN_ANCHORED:
                    text.setdefault(form, set()).add(entry.name)
                else:
                    short.add((form, entry.name))
        hexes: dict[bytes, set[str]] = {}
        for entry in forms:  # twice the value's length: always long enough
            hexes.setdefault(entry.hex, set()).add(entry.name)
        return cls(
            forms,
            fragments,
            Anchored.build((form, tuple(sorted(names))) for form, names in text.items()),
            Anchored.build((form, tuple(sorted(names))) for form, names in hexes.items()),
            tuple(sorted(short)),
            redactor,
        )

    @property
    def names(self) -> frozenset[str]:
        return frozenset(entry.name for entry in self.forms)

    def find(self, *parts: bytes) -> tuple[str, ...]:
        """The names of the entries whose secrets, or a fragment of them (fragments.py), appear
        in any of `parts`, also cut into pieces across fields (fields.py) (sorted)."""
        if not self.forms:
            return ()
        haystack = b"\n".join(parts)
        views = _views(haystack)
        found: set[str] = set()
        for view in views:
            lowered = view.lower()  # hex in any mix of cases
            # One pass over each: the windows' pieces are pieces of the whole forms too.
            hits = self._text.hits(view), self._hex.hits(lowered)
            found |= self._text.find(view, hits[0]) | self._hex.find(lowered, hits[1])
            found |= self.fragments.find(view, lowered, hits)
        for form, name in self._short:
            if name not in found and any(form in view for view in views):
                found.add(name)
        if self.fragments:
            for joined in (j for part in parts for j in joined_fields(part)):
                for view in _views(joined):
                    found |= self.fragments.find(view)
        return tuple(sorted(found))

    def masker(self, names: Iterable[str]) -> Masker:
        """A masker for the secrets of the entries `names` (those injected into one request)."""
        wanted = frozenset(names)
        masker = self._maskers.get(wanted)
        if masker is None:
            forms = {f for entry in self.forms if entry.name in wanted for f in entry.masked_forms()}
            raws = {entry.raw for entry in self.forms if entry.name in wanted}
            masker = Masker(tuple(sorted(forms, key=len, reverse=True)), tuple(sorted(raws, key=len, reverse=True)))
            if len(self._maskers) < 256:  # name sets are the policy's injections: few
                self._maskers[wanted] = masker
        return masker

    def redact(self, text: str) -> str:
        """`text` with every form of every secret, and every piece of a long one (fragments.py),
        replaced by ****: for logs and the audit log."""
        if self._redactor is None or not text:
            return text
        return self.fragments.mask(self._redactor.sub(MASK, text), MASK)


def _views(haystack: bytes) -> list[bytes]:
    """The haystack and its decodings: percent (twice; `+` as a space, as forms write it),
    JSON escapes, each also with whitespace removed (a value broken by a line break, written
    as is, as `%0A`, `+`, `\\n` or `\\u000a`)."""
    views = [haystack]
    decoded = haystack
    for _ in range(2):
        if b"%" not in decoded and b"+" not in decoded:
            break
        decoded = unquote_to_bytes(decoded.replace(b"+", b" "))
        views.append(decoded)
    if b"%" in haystack and b"+" in haystack:  # a '+' may be a '+' too (base64 in a query)
        views.append(unquote_to_bytes(haystack))
    for view in list(views):
        if b"\\" in view:
            views.append(_JSON_ESCAPE.sub(_unescape, view))
    views.extend([view.translate(None, _WHITESPACE) for view in views])
    return list(dict.fromkeys(views))


_SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f", b'"': b'"', b"\\": b"\\"}


def _unescape(match: re.Match[bytes]) -> bytes:
    if match.group(2):
        return _SIMPLE_ESCAPES.get(match.group(2), match.group(2))
    code = int(match.group(1), 16)
    return chr(code).encode("utf-8") if code < 0xD800 or code > 0xDFFF else match.group()
