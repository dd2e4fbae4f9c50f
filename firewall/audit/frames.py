"""The frames the proxy's audit writer sends its child (process_writer.py → child.py): a length,
then marshal of (number, resend, rows); rows are tuples of str, int, float and None. Only the
proxy and its child hold the pipe. A module of its own, so the child imports no more than this."""

from __future__ import annotations

import marshal
import struct
from typing import BinaryIO

_LENGTH = struct.Struct("!I")


def encode_frame(number: int, resend: bool, rows: list[tuple]) -> bytes:
    payload = marshal.dumps((number, resend, rows))
    return _LENGTH.pack(len(payload)) + payload


def read_frames(stream: BinaryIO):
    """(number, resend, rows) for each frame, until the parent closes the pipe."""
    while True:
        head = stream.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            return
        (length,) = _LENGTH.unpack(head)
        payload = stream.read(length)
        if len(payload) < length:
            return
        yield marshal.loads(payload)
