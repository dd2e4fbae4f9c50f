"""A logging filter that keeps the vault's secrets out of the proxy's log, in every form."""

from __future__ import annotations

import logging
from collections.abc import Callable

from firewall.redaction.index import SecretIndex

_FORMATTER = logging.Formatter()


class RedactSecrets(logging.Filter):
    """Rewrites each record's message (and traceback) with every secret form masked."""

    def __init__(self, index: Callable[[], SecretIndex]):
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        index = self.index()
        if not index.forms:
            return True
        record.msg, record.args = index.redact(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = index.redact(record.exc_text)
        return True


def install(index: Callable[[], SecretIndex]) -> None:
    """Put the filter on every handler of the root logger (mitmproxy's records pass there too)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets(index))
