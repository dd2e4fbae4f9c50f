"""The narrowest path globs that cover the paths requests were seen on.

A path seen is kept as it is. Paths that differ in one segment only, at the same place, become one
glob with `*` there when at least `min_shared` distinct values were seen there
(`/v1/models/a`, `/v1/models/b`, `/v1/models/c` → `/v1/models/*`): a prefix only when several paths
share it, one segment wide, never `**`. As pipelock's learn-and-lock does, a segment that names
something sensitive (`admin`, `token`, ...) is never folded into a `*`, and a glob that would also
cover a path that must stay refused (a person denied it, the exfiltration guard or a safety check
refused it) is not made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from firewall.policy.paths import GlobError, compile_glob

# Words whose segments stay literal (pipelock's reserved-segment idea): folding `/v1/x/admin` with
# its siblings into `/v1/x/*` would let through the admin endpoint on the strength of the others.
_SENSITIVE = re.compile(
    r"admin|auth|oauth|token|secret|key|password|passwd|credential|session|login|billing|vault|"
    r"sudo|root|internal|private|delete|payment|invoice|users?$",
    re.I,
)
# What a path glob can hold (grammar's PATH_GLOB, less "*", which would be a wildcard).
_WRITABLE = re.compile(r'/[^\s,#"*]*')


@dataclass(frozen=True)
class Covered:
    glob: str
    paths: frozenset[str]


def writable(path: str) -> bool:
    """Whether `path` can be written as a glob matching exactly it (no `*`, `,`, space, `#`, `"`)."""
    return _WRITABLE.fullmatch(path) is not None


def as_glob(path: str) -> str:
    """The glob of one canonical path: its trailing slash dropped (matching ignores it)."""
    return path.rstrip("/") or "/"


def generalize(
    paths: Iterable[str],
    min_shared: int,
    allowed: Callable[[str], bool] = lambda glob: True,
) -> list[Covered]:
    """Globs covering `paths` (each `writable`), widest groups first; `allowed(glob)` vetoes a `*`."""
    paths = list(paths)
    remaining: dict[str, set[str]] = {as_glob(p): set() for p in paths}
    for p in paths:
        remaining[as_glob(p)].add(p)
    groups: dict[tuple[int, int, tuple[str, ...]], set[str]] = {}
    for glob in remaining:
        segments = glob[1:].split("/") if glob != "/" else []
        for i in range(len(segments)):
            shape = (*segments[:i], "*", *segments[i + 1 :])
            groups.setdefault((len(segments), i, shape), set()).add(glob)
    out: list[Covered] = []
    for (_, i, shape), members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        members = {m for m in members if m in remaining}
        values = {m[1:].split("/")[i] for m in members}
        if len(values) < min_shared or any(_SENSITIVE.search(v) for v in values):
            continue
        glob = "/" + "/".join(shape)
        if not allowed(glob):
            continue
        covered = frozenset(p for m in members for p in remaining.pop(m))
        out.append(Covered(glob, covered))
    out.extend(Covered(glob, frozenset(seen)) for glob, seen in sorted(remaining.items()))
    return out


def glob_matches(glob: str, path: str) -> bool:
    try:
        return compile_glob(glob).matches(path)
    except GlobError:
        return False
