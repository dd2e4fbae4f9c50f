"""`firewall run [OPTIONS] -- CMD...` without Typer, for the usual shape of the command line.

`firewall run` is started per agent, per hook, per CI step: its start-up is what every agent
waits for. Building the Typer app and parsing with it costs more than the rest of the command
(Typer and, through it, pydantic: docs/performance.md, "Start-up"). A command line of the
plain shape (the run's own options, each at most once with a value that is not an option,
then `--` and a command) is read here; anything else (`--help`, an unknown option, no `--`, a
value missing) returns None and goes to Typer, which parses and reports it as it always did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

VALUED = {"--agent": "agent", "--policy": "policy", "--upstream-ca": "upstream_ca"}
FLAGS = {"--no-isolate": "no_isolate"}


@dataclass(frozen=True)
class RunArgs:
    command: list[str]
    agent: str = "default"
    policy: list[Path] = field(default_factory=list)
    upstream_ca: Path | None = None
    no_isolate: bool = False


def parse(argv: list[str]) -> RunArgs | None:
    """The arguments after `run`, or None when Typer must read them."""
    if "--" not in argv:
        return None
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    if not command:
        return None
    found: dict[str, object] = {}
    policies: list[Path] = []
    i = 0
    while i < len(options):
        name, eq, value = options[i].partition("=")
        if name in FLAGS and not eq and FLAGS[name] not in found:
            found[FLAGS[name]] = True
            i += 1
            continue
        if name not in VALUED:
            return None
        if not eq:
            if i + 1 >= len(options):
                return None
            value = options[i + 1]
            i += 1
        i += 1
        if not value or value.startswith("-"):
            return None
        if name == "--policy":
            policies.append(Path(value))
        elif VALUED[name] in found:
            return None  # given twice: Typer's rule applies
        else:
            found[VALUED[name]] = value
    upstream_ca = found.get("upstream_ca")
    return RunArgs(
        command=command,
        agent=str(found.get("agent", "default")),
        policy=policies,
        upstream_ca=Path(str(upstream_ca)) if upstream_ca is not None else None,
        no_isolate=bool(found.get("no_isolate", False)),
    )


def main(argv: list[str]) -> int | None:
    """Run `firewall run` with `argv` (after `run`) and return its exit code; None: use Typer."""
    args = parse(argv)
    if args is None:
        return None
    from firewall.cli.run_cmd import run_command

    return run_command(args.command, args.agent, args.policy or None, args.upstream_ca, args.no_isolate)
