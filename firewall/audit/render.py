"""Audit rows and counts as text: an aligned table, CSV, JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence

from firewall.audit.query import ALL_COLUMNS, Group, Row
from firewall.text import printable

TABLE_HEADER = ("SEQ", "TIME (UTC)", "AGENT", "DECISION", "METHOD", "URL", "STATUS", "RULE", "REASON")
# Fixed widths for `tail`, which prints rows before it has seen them all.
TAIL_WIDTHS = (6, 19, 12, 13, 7, 50, 6, 20)
URL_WIDTH = 80
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}  # ws, wss: a turn over a WebSocket


def url(row: Row) -> str:
    scheme, port = row["scheme"], row["port"]
    netloc = row["host"] if _DEFAULT_PORTS.get(scheme) == port else f"{row['host']}:{port}"
    query = f"?{row['query']}" if row["query"] else ""
    return f"{scheme}://{netloc}{row['path']}{query}"


def table_cells(row: Row, url_width: int | None = URL_WIDTH) -> tuple[str, ...]:
    link = printable(url(row))
    if url_width is not None and len(link) > url_width:
        link = link[: url_width - 1] + "…"
    time_text = str(row["time_iso"])[:19].replace("T", " ")
    return (
        str(row["seq"]),
        printable(time_text),
        printable(row["agent"]),
        printable(row["decision"]),
        printable(row["method"]),
        link,
        printable(row["upstream_status"]),
        printable(row["rule"]),
        printable(row["reason"]),
    )


def align(lines: Sequence[Sequence[str]], widths: Sequence[int] | None = None) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    if widths is None:
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    return [
        "  ".join([cell.ljust(width) for cell, width in zip(line, widths, strict=False)] + [line[-1]]).rstrip()
        for line in lines
    ]


GRANT_PREFIX = "grt_"


def approval_cell(approval_id: object, answered_by: object = None) -> str:
    """Who let a held request through: a person and where they answered (`alice via cli`), or a
    standing grant (`grant grt_… by alice`), as `answered_by` says (the approvals records, joined
    by the CLI); without it, the id: a grant (`grt_…`) marked apart from a request put to a person
    (`apr_…`, approved, denied or expired: the DECISION column says which)."""
    if answered_by:
        return printable(answered_by)
    if not approval_id:
        return "-"
    text = printable(approval_id)
    return f"grant {text}" if text.startswith(GRANT_PREFIX) else f"asked {text}"


# How the proxy words a detail that only says who answered (approvals/broker.py, addons/enforce.py):
# the APPROVAL column says it better once the approvals records are joined (`answered_by`).
_WHO_ANSWERED = ("approved by ", "denied by ", "an identical request was approved by ", "standing grant by ")


def detail_cell(row: Row) -> str:
    """The row's detail, or `-` when it only restates who answered, which APPROVAL then shows."""
    detail = printable(row.get("detail"))
    if row.get("answered_by") and detail.startswith(_WHO_ANSWERED):
        return "-"
    return detail


def table(rows: Iterable[Row], width: int | None = None) -> list[str]:
    """The audit table; APPROVAL and DETAIL columns only when a row has one; fitted to `width`
    when given (a terminal: there an extra column with nothing to say is left out), every
    character kept when not (a pipe)."""
    rows = list(rows)
    header: tuple[str, ...] = TABLE_HEADER
    lines = [table_cells(row, URL_WIDTH if width is None else None) for row in rows]
    extra = [
        ("APPROVAL", [approval_cell(row.get("approval_id"), row.get("answered_by")) for row in rows]),
        ("DETAIL", [detail_cell(row) for row in rows]),
    ]
    if any(cell != "-" for _, cells in extra for cell in cells):
        for name, cells in extra:
            if width is None or any(cell != "-" for cell in cells):
                header += (name,)
                lines = [(*line, cell) for line, cell in zip(lines, cells)]
    if width is None:
        return align([header, *lines])
    from firewall.audit.fit import fit

    return align(fit([header, *lines], width))


TAIL_REASON_WIDTH = 30  # what a reason is given on a terminal before other columns give up room


class TailLayout:
    """`audit tail`'s columns, chosen before any row is seen: the fixed widths when piped (every
    character kept, byte for byte as before), fitted to `width` on a terminal."""

    def __init__(self, width: int | None) -> None:
        self.width = width
        if width is not None:
            from firewall.audit.fit import layout

            self.keep, self.widths = layout(TABLE_HEADER, (*TAIL_WIDTHS, TAIL_REASON_WIDTH), width)

    def header(self) -> str:
        return self._line(TABLE_HEADER)

    def line(self, row: Row) -> str:
        return self._line(table_cells(row, URL_WIDTH if self.width is None else None))

    def _line(self, cells: Sequence[str]) -> str:
        if self.width is None:
            return align([cells], TAIL_WIDTHS)[0]
        from firewall.audit.fit import fit_cells

        return align([fit_cells(cells, TABLE_HEADER, self.keep, self.widths)], self.widths[:-1])[0]


def _json_value(value: object) -> object:
    # Only a hand-edited row holds a BLOB.
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write a value of type {type(value).__name__} as JSON")


def json_line(row: Row) -> str:
    return json.dumps(row, ensure_ascii=False, default=_json_value)


def json_array(rows: Sequence[Row]) -> str:
    """A JSON array with one row object per line."""
    if not rows:
        return "[]"
    return "[\n" + ",\n".join(json_line(row) for row in rows) + "\n]"


def csv_text(rows: Iterable[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ALL_COLUMNS)
    writer.writerows([row[column] for column in ALL_COLUMNS] for row in rows)
    return out.getvalue()


def stats_table(groups: Sequence[Group], by: str) -> list[str]:
    if by == "decision":
        return align([("DECISION", "COUNT"), *((printable(g.value), str(g.total)) for g in groups)])
    decisions = _decision_order(groups)
    header = (by.upper(), "TOTAL", *(printable(d) for d in decisions))
    lines = [(printable(g.value), str(g.total), *(str(dict(g.decisions).get(d, 0)) for d in decisions)) for g in groups]
    if any(g.input_tokens or g.output_tokens or g.cost_usd for g in groups):  # what the answers used
        header = (*header, "INPUT TOKENS", "OUTPUT TOKENS", "CACHED TOKENS", "COST USD")
        lines = [
            (*line, str(g.input_tokens), str(g.output_tokens), str(g.cached_tokens), f"{g.cost_usd:.6f}")
            for line, g in zip(lines, groups)
        ]
    return align([header, *lines])


def stats_json(groups: Sequence[Group], by: str) -> str:
    return json.dumps(
        [
            {
                by: g.value,
                "total": g.total,
                "decisions": dict(g.decisions),
                "input_tokens": g.input_tokens,
                "output_tokens": g.output_tokens,
                "cached_tokens": g.cached_tokens,
                "cost_usd": g.cost_usd,
            }
            for g in groups
        ],
        ensure_ascii=False,
        indent=2,
        default=_json_value,
    )


def _decision_order(groups: Sequence[Group]) -> list[str]:
    """Every decision that occurs, most frequent overall first."""
    totals: dict[str, int] = {}
    for group in groups:
        for decision, count in group.decisions:
            totals[decision] = totals.get(decision, 0) + count
    return sorted(totals, key=lambda decision: (-totals[decision], decision))
