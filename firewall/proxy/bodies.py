"""Unpacking a `Content-Encoding`d body with a bound on what it may grow to.

A few kilobytes of gzip can unpack to gigabytes, so every decoder stops at
`limit` bytes of output and says whether it got to the end. Used to scan
request bodies for secrets and to scrub compressed responses.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import brotli
import zstandard

IDENTITY = ("", "identity")


class BodyDecodeError(ValueError):
    """An encoding the firewall does not know, or bytes that are not valid in it."""


@dataclass(frozen=True)
class Decoded:
    data: bytes  # at most `limit` bytes
    complete: bool  # False: the body unpacks to more than `limit` bytes


def decode(data: bytes, content_encoding: str, limit: int) -> Decoded:
    """`data` unpacked from every encoding listed (last applied first), at most `limit` bytes."""
    complete = True
    encodings = [e.strip().lower() for e in content_encoding.split(",")]
    for encoding in reversed(encodings):
        if encoding in IDENTITY:
            continue
        data, done = _decode_one(data, encoding, limit)
        complete = complete and done
    return Decoded(data[:limit], complete and len(data) <= limit)


def _decode_one(data: bytes, encoding: str, limit: int) -> tuple[bytes, bool]:
    try:
        if encoding in ("gzip", "x-gzip"):
            return _zlib(data, zlib.MAX_WBITS | 16, limit)
        if encoding == "deflate":
            try:
                return _zlib(data, zlib.MAX_WBITS, limit)
            except zlib.error:  # servers send raw deflate as "deflate" too
                return _zlib(data, -zlib.MAX_WBITS, limit)
        if encoding == "br":
            return _brotli(data, limit)
        if encoding == "zstd":
            return _zstd(data, limit)
    except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
        raise BodyDecodeError(f"the body is not valid {encoding}: {exc}") from None
    raise BodyDecodeError(f"unknown content-encoding {encoding!r}")


def _zlib(data: bytes, wbits: int, limit: int) -> tuple[bytes, bool]:
    decoder = zlib.decompressobj(wbits)
    out = decoder.decompress(data, limit + 1)
    return out[:limit], len(out) <= limit and not decoder.unconsumed_tail


def _brotli(data: bytes, limit: int) -> tuple[bytes, bool]:
    decoder = brotli.Decompressor()
    out = decoder.process(data, output_buffer_limit=limit + 1)
    return out[:limit], len(out) <= limit and decoder.is_finished()


def _zstd(data: bytes, limit: int) -> tuple[bytes, bool]:
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
        out = reader.read(limit + 1)
    return out[:limit], len(out) <= limit
