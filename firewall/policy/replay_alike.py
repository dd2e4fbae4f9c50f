"""Whether two policies decide a destination alike, so that replay need not decide its requests, and
which targets (path and query) of one destination they decide alike, so that replay decides one."""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, fields, is_dataclass
from functools import lru_cache

from firewall.policy.compiled import CompiledBlock, CompiledPolicy, RequestMatcher, fields_in
from firewall.policy.decision import RuleRef
from firewall.policy.hosts import InvalidHost, normalize_host


@lru_cache(maxsize=4096)
def normalized_host(text: str) -> str | None:
    try:
        return normalize_host(text)
    except InvalidHost:
        return None


def _meaning(obj: object) -> object:
    """What a compiled block decides, without where its lines are (a line moved by an edit elsewhere)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return (
            type(obj).__name__,
            tuple(
                (f.name, _meaning(getattr(obj, f.name)))
                for f in fields(obj)
                if not f.metadata.get("derived") and not isinstance(getattr(obj, f.name), RuleRef)
            ),
        )
    if isinstance(obj, tuple):
        return tuple(_meaning(item) for item in obj)
    return obj


class SameBlocks:
    """Whether two policies decide a destination alike: the same host block (up to where its lines
    are), mode, default and injected secrets. Then every request to it is decided alike, whatever the
    audit log did not record, and need not be decided at all. Compared once per pair of blocks."""

    def __init__(self, old: CompiledPolicy, new: CompiledPolicy) -> None:
        self.old, self.new = old, new
        self.same_policy = old.sha256 == new.sha256
        self.same_default = old.default is new.default
        self._pairs: dict[tuple[int, int], bool] = {}
        self._destinations: dict[tuple[str, int], bool] = {}

    def __call__(self, host: str, port: int) -> bool:
        same = self._destinations.get((host, port))
        if same is None:
            if len(self._destinations) > 100_000:
                self._destinations.clear()
            same = self._destinations[(host, port)] = self._decide_alike(host, port)
        return same

    def _decide_alike(self, host: str, port: int) -> bool:
        if self.same_policy:
            return True
        if not self.same_default:
            return False
        name = normalized_host(host)
        if name is None:
            return False
        old_block, new_block = self.old.block_for(name, port), self.new.block_for(name, port)
        if old_block is None or new_block is None:
            return old_block is new_block and self.old.mode is self.new.mode
        pair = (id(old_block), id(new_block))
        same = self._pairs.get(pair)
        if same is None:
            same = self._pairs[pair] = self._compare(old_block, new_block)
        return same

    def _compare(self, old: CompiledBlock, new: CompiledBlock) -> bool:
        if (old.mode or self.old.mode) is not (new.mode or self.new.mode):
            return False
        old_secrets = [self.old.credential_map[line.credential].secret for line in old.injects]
        new_secrets = [self.new.credential_map[line.credential].secret for line in new.injects]
        return old_secrets == new_secrets and _meaning(old) == _meaning(new)


# A path `canonicalize` leaves as it is and never refuses: "/"-separated segments of characters
# that stand for themselves (no "%", ";", "\\", control character), none empty but the last, none
# "." or "..". The audit log records canonical paths, so recorded paths are of this form.
_SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9\-._~!$&'()*+,=:@]+"
_PLAIN_PATH = re.compile(rf"/(?:{_SEGMENT}/)*(?:{_SEGMENT})?")
# A query the engine reads nothing of unless a condition reads it: no escape, fragment or control
# character, and no `_method` parameter (overrides.py).
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")
_ANY_QUERY = "?"  # the stand-in of a plain query no condition reads (never a path's stand-in)


@dataclass(frozen=True)
class _Reads:
    """What the two host blocks of a destination read of a request's target, for one method."""

    globs: tuple[RequestMatcher, ...] | None  # one matcher per distinct set of path globs; None: the path itself
    query: bool  # a condition reads a query parameter


class TargetsAlike:
    """What the two policies read of a request's path and query at one destination, so that
    requests that differ only in targets decided alike are replayed once.

    Of the path: which path globs of the two host blocks' rules, limits and budgets that may apply
    to the method match it; that is all the engine and the unknown walk (replay_walk.py) read of
    it, unless a condition of either block reads `path`, and provided the path is one `canonicalize`
    leaves as it is. Of the query: nothing, unless a condition reads a query parameter, or it holds
    an escape, a fragment, a control character or `_method` (the engine refuses some of those).
    Otherwise the path or query stands for itself."""

    def __init__(self, old: CompiledPolicy, new: CompiledPolicy) -> None:
        self.old, self.new = old, new
        self._reads: dict[tuple[str, int, str], _Reads] = {}

    def __call__(self, host: str, port: int, method: str, path: str, query: str) -> tuple[Hashable, str]:
        """(a stand-in for `path`: a tuple of booleans, or the path; for `query`: _ANY_QUERY, or the query)."""
        key = (host, port, method)
        reads = self._reads.get(key)
        if reads is None:
            if len(self._reads) > 100_000:
                self._reads.clear()
            reads = self._reads[key] = self._read(host, port, method)
        if reads.globs is None or not _PLAIN_PATH.fullmatch(path):
            path_key: Hashable = path
        else:
            path_key = tuple([m.matches_method_and_path(method, path) for m in reads.globs])
        if reads.query or "_method" in query or not _PLAIN_QUERY.fullmatch(query):
            return path_key, query
        return path_key, _ANY_QUERY

    def _read(self, host: str, port: int, method: str) -> _Reads:
        name = normalized_host(host)
        if name is None:
            return _Reads(None, True)
        found: dict[tuple[str, ...], RequestMatcher] = {}
        kinds: set[str] = set()
        for block in (self.old.block_for(name, port), self.new.block_for(name, port)):
            if block is None:
                continue
            kinds.update(field.kind for cond in block.conditions() for field in fields_in(cond))
            for matcher in block.matchers():
                if matcher.globs and (not matcher.method_set or method in matcher.method_set):
                    found.setdefault(matcher.paths, matcher)
        return _Reads(None if "path" in kinds else tuple(found.values()), "query" in kinds)
