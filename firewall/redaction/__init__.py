"""Keeping the vault's secrets out of what leaves and of what is written down: one index of every
secret's forms (finding them in requests, redacting them in text), the maskers for answers, and
query masking. One minimum length (MIN_SECRET_CHARS) and one mask (MASK) for all of them."""

from firewall.redaction.index import MASK, MIN_SECRET_CHARS, SecretIndex, secret_values
from firewall.redaction.masker import Masker, StreamMasker
from firewall.redaction.query import keep, looks_secret, mask_query

__all__ = [
    "MASK",
    "MIN_SECRET_CHARS",
    "Masker",
    "SecretIndex",
    "StreamMasker",
    "keep",
    "looks_secret",
    "mask_query",
    "secret_values",
]
