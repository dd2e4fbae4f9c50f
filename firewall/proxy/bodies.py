"""Unpacking a `Content-Encoding`d body with a bound on what it may grow to.

A few kilobytes of gzip can unpack to gigabytes, so every decoder stops at
`limit` bytes of output and says whether it got to the end. Used to scan
request bodies for secrets and to scrub compressed responses.
"""

from __future__ import annotations

import bz2
import io
import lzma
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
    """Every member: a gzip body may be several members one after the other (RFC 1952), and
    a reader that stops after the first never sees the rest."""
    decoder = zlib.decompressobj(wbits)
    out = decoder.decompress(data, limit + 1)
    while decoder.eof and decoder.unused_data and wbits & 16 and len(out) <= limit:
        rest, decoder = decoder.unused_data, zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(rest, limit + 1 - len(out))
        except zlib.error:  # bytes after the last member that are not one: ignored, as gzip(1) does
            return out[:limit], len(out) <= limit
    return out[:limit], len(out) <= limit and not decoder.unconsumed_tail


def _brotli(data: bytes, limit: int) -> tuple[bytes, bool]:
    decoder = brotli.Decompressor()
    out = decoder.process(data, output_buffer_limit=limit + 1)
    return out[:limit], len(out) <= limit and decoder.is_finished()


def _zstd(data: bytes, limit: int) -> tuple[bytes, bool]:
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
        out = reader.read(limit + 1)
    return out[:limit], len(out) <= limit


# What a packed body starts with, whatever its headers say (a gzip file posted as is).
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
MAX_LAYERS = 4  # packed inside packed, this deep


def unpack_by_content(data: bytes, limit: int) -> list[bytes]:
    """Every layer `data` unpacks to, judged by its first bytes (gzip inside gzip, a gzip file
    sent without Content-Encoding, ...), each at most `limit` bytes; [] when it is not packed."""
    layers: list[bytes] = []
    for _ in range(MAX_LAYERS):
        kind = _packed_as(data)
        if kind is None:
            break
        try:
            data, _complete = _unpack(data, kind, limit)
        except (zlib.error, zstandard.ZstdError, OSError, EOFError, ValueError, lzma.LZMAError):
            break  # looks packed but is not: the bytes as they are were scanned already
        layers.append(data)
    return layers


def _packed_as(data: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:2] in _ZLIB_HEADERS:
        return "zlib"
    return None


def _unpack(data: bytes, kind: str, limit: int) -> tuple[bytes, bool]:
    if kind == "gzip":
        return _zlib(data, zlib.MAX_WBITS | 16, limit)
    if kind == "zlib":
        return _zlib(data, zlib.MAX_WBITS, limit)
    if kind == "zstd":
        return _zstd(data, limit)
    decoder = bz2.BZ2Decompressor() if kind == "bzip2" else lzma.LZMADecompressor()
    out = decoder.decompress(data, max_length=limit + 1)
    return out[:limit], len(out) <= limit
