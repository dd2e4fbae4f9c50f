"""Result lines fitted to a terminal's width: `PASS  file:line  expect allow GET https://…`.

A line too wide gives up room in this order: the URL in its text down to 36 characters (shortened
in the middle, as the audit table shows URLs: the host and the end of the path stay), the file's
path (its name and line number stay), what follows the URL (`as agent`, `json`), the URL down to 24,
then the end of the text. The verdict is never cut. Piped output (no width)
keeps every character.
"""

from __future__ import annotations

import re

from firewall.text import ELLIPSIS, shorten, wrap_words

URL_FIRST = 36  # a URL gives up room down to this first (as the audit table's URL column)
MIN_URL = 24
MIN_PATH = 16
MIN_TEXT = 16
_URL = re.compile(r"\S+://\S+")


def fit(fixed: int, location: str, text: str, width: int | None) -> tuple[str, str]:
    """(location, text) shortened so that `fixed` columns of verdict and spacing, the location and
    the text fit `width` (as far as the shortest forms allow)."""
    if width is None:
        return location, text
    over = fixed + len(location) + len(text) - width
    if over > 0:
        text, over = _shorter_url(text, over, URL_FIRST)
    if over > 0:
        location, over = _shorter_location(location, over)
    if over > 0:
        text, over = _shorter_options(text, over)
    if over > 0:
        text, over = _shorter_url(text, over, MIN_URL)
    if over > 0:
        text = shorten(text, max(len(text) - over, MIN_TEXT))
    return location, text


def wrapped(line: str, width: int | None, indent: str) -> list[str]:
    """A line of prose (why an expectation failed) broken at spaces to fit `width`; a word wider
    than a line (a long file path) shortened in the middle."""
    if width is None or len(line) <= width:
        return [line]
    room = max(width - len(indent), MIN_PATH)
    lead = line[: len(line) - len(line.lstrip())]
    words = [shorten(word, room, middle=True) for word in line.split()]
    return wrap_words(lead + " ".join(words), width, indent)


def _shorter_url(text: str, over: int, narrowest: int) -> tuple[str, int]:
    found = _URL.search(text)
    if found is None:
        return text, over
    url = found.group()
    short = shorten(url, min(len(url), max(len(url) - over, narrowest)), middle=True)
    return text[: found.start()] + short + text[found.end() :], over - (len(url) - len(short))


def _shorter_options(text: str, over: int) -> tuple[str, int]:
    """What follows the URL (`as agent "ci"`, `json {...}`) cut at its end, down to an ellipsis."""
    found = _URL.search(text)
    if found is None or found.end() == len(text):
        return text, over
    head, rest = text[: found.end()], text[found.end() :]
    short = shorten(rest, max(len(rest) - over, 2))  # " …": something follows
    return head + short, over - (len(rest) - len(short))


def _shorter_location(location: str, over: int) -> tuple[str, int]:
    path, colon, line = location.rpartition(":")
    if not (colon and line.isdigit()):
        path, colon, line = location, "", ""
    keep = max(len(path) - over, MIN_PATH, len(path.rpartition("/")[2]) + 1)  # the file's name stays whole
    if keep >= len(path):
        return location, over
    short = ELLIPSIS + path[-(keep - 1) :]  # a file's name matters most: its end stays
    return short + colon + line, over - (len(path) - len(short))
