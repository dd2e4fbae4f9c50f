"""What rule suggestions are made of: the requests a suggestion learns from (`Observed`), what it may
propose (`Options`), and what it proposes (`Proposal` of `Suggestion`s, each with its `Placement`).
The proposing itself is firewall/policy/suggest.py; the text a person reviews, suggest_edit.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from firewall.policy.decision import RuleRef


class Seen(StrEnum):
    DEFAULT = "default"  # refused by the policy's default (or, in report mode, would have been)
    APPROVED = "approved"  # held for a person and let through by a person's answer or a standing grant
    REFUSED = "refused"  # must stay refused: a person denied it, the exfiltration guard, a safety check


@dataclass(frozen=True)
class Observed:
    """One audit row as a suggestion needs it."""

    seen: Seen
    method: str
    scheme: str
    host: str
    port: int
    path: str  # canonical
    query: str = ""
    agent: str | None = None
    rule: str | None = None  # APPROVED: the rule that held it, as recorded


@dataclass(frozen=True)
class Options:
    min_count: int = 2  # a default-refused rule needs this many requests; an approved one, one
    min_shared: int = 3  # distinct values seen in one segment before it becomes `*`
    whole_host: bool = False  # one rule per method for any path of a host, not per path
    agents: tuple[str, ...] = ()  # only these agents' requests, and rules that say `when agent ...`


class Where(StrEnum):
    NEW_BLOCK = "new_block"  # no host block names the host: a new one
    BLOCK_END = "block_end"  # after the last item of the block
    BEFORE_RULE = "before_rule"  # just before the approve rule that held the requests


@dataclass(frozen=True)
class Placement:
    where: Where
    patterns: tuple[str, ...]  # the host block's patterns (a new block: the one it would name)
    block: RuleRef | None = None  # the host block's header line; None for a new block
    before: RuleRef | None = None  # BEFORE_RULE: the approve rule

    @property
    def describe(self) -> str:
        if self.where is Where.NEW_BLOCK:
            return "a new host block (no block names this host)"
        assert self.block is not None
        if self.where is Where.BLOCK_END:
            return f"the end of the host block at {self.block.location}"
        assert self.before is not None
        return f"the host block at {self.block.location}, just before the rule at {self.before.location}"


@dataclass(frozen=True)
class Suggestion:
    placement: Placement
    methods: tuple[str, ...]
    glob: str | None  # None: any path (whole_host)
    condition: str | None
    requests: int
    approved: int  # of `requests`, let through by a person
    agents: tuple[str | None, ...]  # None: requests without an agent name
    examples: tuple[str, ...]  # "GET https://host/path?query"

    @property
    def text(self) -> str:
        parts = ["allow", ", ".join(self.methods)]
        if self.glob is not None:
            parts.append(self.glob)
        if self.condition:
            parts.append(f"when {self.condition}")
        return " ".join(parts)

    @property
    def why(self) -> str:
        default = self.requests - self.approved
        said = []
        if self.approved:
            said.append(f"{self.approved} approved by a person")
        if default:
            said.append(f"{default} refused by the default")
        agents = ", ".join(a or "-" for a in self.agents)
        return f"{self.requests} request(s): {' and '.join(said)}; agent(s) {agents}"


@dataclass(frozen=True)
class Proposal:
    suggestions: tuple[Suggestion, ...]
    read: int  # observations handed in
    skipped: dict[str, int] = field(default_factory=dict)  # requests left out, by why

    @property
    def covered(self) -> int:
        return sum(s.requests for s in self.suggestions)


SKIP_WHY = {
    "already_allowed": "already allowed by the policy",
    "decided_otherwise": "decided by another rule of the policy now",
    "refused": "refused by a person, the exfiltration guard or a safety check (never proposed)",
    "too_few": "seen fewer times than --min-count, by the default",
    "not_writable": "a path or host a rule cannot name exactly",
    "other_agents": "sent by other agents than --agent",
}
