"""What changed between two compiled policies, as lines a person reads at `policy apply`."""

from __future__ import annotations

from firewall.policy.compiled import CompiledBlock, CompiledPolicy, CredentialSpec


def _items(block: CompiledBlock) -> list[str]:
    """A block's lines in order: rules, limits and injects, by their source text."""
    lines = [f"inject {i.credential}" if i.when is None else i.source.text for i in block.injects]
    lines += [limit.source.text for limit in block.limits]
    lines += [rule.source.text for rule in block.rules]
    return lines


def diff_policies(old: CompiledPolicy | None, new: CompiledPolicy) -> list[str]:
    if old is None:
        rules = sum(len(b.rules) for b in new.blocks)
        return [f"new policy: {len(new.blocks)} host block(s), {rules} rule(s), default {new.default.value}"]
    changes: list[str] = []
    for name in ("default", "mode", "approval_timeout"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(f"~ {name.replace('_', ' ')}: {_text(before)} -> {_text(after)}")
    old_blocks = {b.patterns: b for b in old.blocks}
    new_blocks = {b.patterns: b for b in new.blocks}
    for patterns, block in new_blocks.items():
        label = "host " + ", ".join(patterns)
        if patterns not in old_blocks:
            changes.append(f"+ {label} ({len(block.rules)} rule(s))")
            continue
        before, after = _items(old_blocks[patterns]), _items(block)
        if before == after:
            continue
        changes.append(f"~ {label}")
        changes += [f"    - {line}" for line in before if line not in after]
        changes += [f"    + {line}" for line in after if line not in before]
        if sorted(before) == sorted(after):
            changes.append("    (same lines, new order: the first matching rule decides)")
    for patterns in old_blocks:
        if patterns not in new_blocks:
            changes.append("- host " + ", ".join(patterns))
    old_creds = {c.name: c for c in old.credentials}
    for cred in new.credentials:
        if cred.name not in old_creds:
            changes.append(f"+ credential {cred.name}")
        elif old_creds[cred.name] != cred and _cred_key(old_creds[cred.name]) != _cred_key(cred):
            changes.append(f"~ credential {cred.name}")
    changes += [f"- credential {name}" for name in old_creds if name not in {c.name for c in new.credentials}]
    return changes or ["no change in hosts, rules or credentials (only source positions or comments)"]


def _cred_key(cred: CredentialSpec) -> tuple[str, str, str, str, tuple[tuple[str, str], ...]]:
    return (cred.secret, cred.kind, cred.target, cred.template, cred.settings)


def _text(value: object) -> str:
    """A default, mode (their enum value) or approval timeout (seconds), as a person reads it."""
    if isinstance(value, float):
        return f"{value:g}s"
    return str(getattr(value, "value", value))
