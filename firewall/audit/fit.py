"""Fitting the audit table to a terminal's width: long cells shortened (URLs in the middle, so the
host and the end of the path stay), then the least needed columns left out.

Only the human table on a terminal (or with COLUMNS set) is fitted; piped tables, --json and
--csv keep every character.
"""

from __future__ import annotations

from collections.abc import Sequence

from firewall.text import shorten  # shared with messages fitted to a terminal (firewall/text.py)

GAP = 2
# (column, width it is first shortened to), in the order they give up room
SHRINK = (("URL", 36), ("DETAIL", 20), ("REASON", 8), ("RULE", 14), ("APPROVAL", 14), ("AGENT", 10))
DROP = ("REASON", "RULE", "TIME (UTC)", "STATUS")  # left out in this order when still too wide
# Then, before who approved is left out too, the long cells give up more room (80 columns keep it)
SQUEEZE = {"URL": 24, "DETAIL": 12}
DROP_LAST = ("APPROVAL",)
GROW = ("APPROVAL", "AGENT", "RULE", "REASON", "URL", "DETAIL")  # who gets freed room back first: the short ones
LAST_RESORT = 8  # how narrow a shortened column may get when the terminal is narrower still
MIDDLE = ("URL",)


def fit(lines: Sequence[Sequence[str]], width: int) -> list[list[str]]:
    """`lines` (the header first) with cells shortened and columns left out until the aligned
    table is at most `width` columns wide (as far as the narrowest forms allow)."""
    header = list(lines[0])
    keep = list(range(len(header)))
    widths = {name: max(len(line[i]) for line in lines) for i, name in enumerate(header)}

    def total() -> int:
        return sum(widths[header[i]] for i in keep) + GAP * (len(keep) - 1)

    natural = dict(widths)
    _shrink(widths, header, width, total, {name: narrowest for name, narrowest in SHRINK})
    _drop(DROP, header, keep, width, total)
    _shrink(widths, header, width, total, {name: SQUEEZE.get(name, narrowest) for name, narrowest in SHRINK})
    _drop(DROP_LAST, header, keep, width, total)
    _shrink(widths, header, width, total, {name: LAST_RESORT for name, _ in SHRINK})
    kept = {header[i] for i in keep}
    for name in GROW:  # room freed by left-out columns goes back
        if name in kept and total() < width:
            widths[name] = min(natural[name], widths[name] + width - total())
    return [[shorten(line[i], widths[header[i]], header[i] in MIDDLE) for i in keep] for line in lines]


def _drop(names: Sequence[str], header: list[str], keep: list[int], width: int, total) -> None:
    for name in names:
        if total() <= width:
            return
        if name in header and len(keep) > 1:
            keep.remove(header.index(name))


def _shrink(widths: dict[str, int], header: list[str], width: int, total, narrowest: dict[str, int]) -> None:
    for name, _ in SHRINK:
        if name in header and total() > width:
            widths[name] = min(widths[name], max(narrowest[name], len(name), widths[name] - (total() - width)))


def layout(header: Sequence[str], natural: Sequence[int], width: int) -> tuple[list[int], list[int]]:
    """For rows not seen yet (`audit tail`): which columns to keep and how wide each is, so a
    row whose cells are `natural` wide fits `width`; the last column gets what room is left."""
    fitted = fit([list(header), ["x" * n for n in natural]], width)
    keep = [list(header).index(name) for name in fitted[0]]
    widths = [len(cell) for cell in fitted[1]]
    room = width - sum(widths[:-1]) - GAP * (len(widths) - 1)
    widths[-1] = max(widths[-1], room)
    return keep, widths


def fit_cells(cells: Sequence[str], header: Sequence[str], keep: Sequence[int], widths: Sequence[int]) -> list[str]:
    """One row's cells, only the kept columns, each shortened to its width (URLs in the middle)."""
    return [shorten(cells[i], w, header[i] in MIDDLE) for i, w in zip(keep, widths, strict=True)]
