"""Whether two policies decide a destination alike, so that replay need not decide its requests."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from functools import lru_cache

from firewall.policy.compiled import CompiledBlock, CompiledPolicy
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
