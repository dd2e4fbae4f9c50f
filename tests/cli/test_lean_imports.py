"""What hot processes import (structural checks, no timings): every module a process loads costs
its start-up time and its memory (docs/performance.md, "Start-up" and "Memory").

Read with `python -X importtime`, which lists every module a process imports, as it really starts.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from firewall.cli.run_plain import RunArgs, parse
from firewall.state import db as state_db
from firewall.state.db import open_database, open_plain, schema_stamp

HEAVY = ("mitmproxy", "typer", "rich", "sqlite_utils", "lark", "click", "pydantic")


def imported(args: list[str], env: dict | None = None, stdin: str = "") -> set[str]:
    """The top-level packages a `python -X importtime ARGS` process imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert names, f"no import lines from {args}: {result.stderr[-500:]}"
    return names


def test_the_audit_writer_child_imports_neither_the_proxy_nor_the_command_line(tmp_path: Path):
    db = tmp_path / "firewall.db"
    open_database(db).conn.close()  # as ProcessAuditWriter does before it starts a child
    loaded = imported(["-m", "firewall.audit.child", str(db)])
    assert "firewall" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


RUN_NEVER = ("mitmproxy", "typer", "rich", "lark", "pydantic", "sqlite_utils", "click", "pluggy", "dateutil")


def test_firewall_run_with_a_proxy_running_loads_no_proxy_no_typer_no_parser(firewall, proxy):
    """`firewall run -- CMD` of the usual shape, with the shared proxy running: it talks to the proxy
    through files and a socket, reads the compiled policy (no parser), and runs without Typer."""
    firewall.apply("default allow\n")
    loaded = imported(["-m", "firewall", "run", "--no-isolate", "--agent", "lean", "--", "true"], env=firewall.env)
    assert {"firewall", "sqlite3"} <= loaded
    assert loaded.isdisjoint(RUN_NEVER), sorted(loaded & set(RUN_NEVER))


# `-X importtime` does not list a module loaded through importlib.import_module (firewall/lazy.py
# loads a package's names so), only what that module imports in turn: read sys.modules at exit.
LIST_MODULES = (
    "import atexit, runpy, sys\n"
    "out = sys.argv[1]\n"
    "atexit.register(lambda: open(out, 'w').write('\\n'.join(sys.modules)))\n"
    "sys.argv = ['firewall', *sys.argv[2:]]\n"
    "runpy.run_module('firewall', run_name='__main__', alter_sys=True)\n"
)


def modules(args: list[str], tmp_path: Path, env: dict | None = None) -> set[str]:
    """Every module (dotted name) loaded by `firewall ARGS` by the time it exits."""
    out = tmp_path / "modules.txt"
    result = subprocess.run(
        [sys.executable, "-c", LIST_MODULES, str(out), *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, f"firewall {args} exited {result.returncode}: {result.stderr[-500:]}"
    return set(out.read_text().split())


def loads(loaded: set[str], package: str) -> bool:
    return any(name == package or name.startswith(package + ".") for name in loaded)


# What no command's own modules are, for `firewall --help` (the policy compiler, the audit log,
# approvals, the vault's store and ciphers, OAuth, the migrations): docs/performance.md, "Start-up".
COMMANDS_ONLY = (
    "firewall.policy",
    "firewall.audit",
    "firewall.approvals",
    "firewall.vault.store",
    "firewall.oauth",
    "firewall.state.schema",
    "firewall.cli.policy_cmd",
    "firewall.cli.audit_cmd",
    "lark",
    "sqlite_utils",
    "cryptography",
)


def test_firewall_help_lists_the_commands_without_loading_them(firewall):
    loaded = modules(["--help"], firewall.home.parent, env=firewall.env)
    assert "firewall.cli.lazy_root" in loaded
    assert [name for name in COMMANDS_ONLY if loads(loaded, name)] == []


def test_control_a_commands_own_help_loads_its_modules(firewall):
    """The same reading sees a command's modules when its help is asked for (it loads them)."""
    loaded = modules(["policy", "--help"], firewall.home.parent, env=firewall.env)
    assert {"firewall.policy", "firewall.cli.policy_cmd", "lark"} <= {n for n in COMMANDS_ONLY if loads(loaded, n)}


INJECTING = """\
credential c {
    secret "c"
    header X-Key = "{secret}"
}
host example.com {
    inject c
    allow GET /v1/**
}
"""


def test_firewall_run_reads_its_credentials_without_building_the_policy(firewall, proxy):
    """`firewall run` needs the names and kinds of the policy's credentials, not the policy."""
    firewall.add_secret("c", "value-of-c-0123456789")
    firewall.apply(INJECTING)
    loaded = modules(["run", "--no-isolate", "--", "true"], firewall.home.parent, env=firewall.env)
    assert "firewall.policy.compiled_json" in loaded
    assert not loads(loaded, "firewall.policy.compiled")


def test_a_run_long_enough_for_the_approval_hint_loads_no_sqlite_utils(firewall, proxy):
    """After 0.5 s the waiting hint looks for held requests (firewall/run/waiting_hint.py): with a
    plain connection. The hint's store loading is the control that it did look."""
    firewall.apply("default allow\n")
    loaded = modules(["run", "--no-isolate", "--", "sleep", "1.2"], firewall.home.parent, env=firewall.env)
    assert "firewall.approvals.store" in loaded
    assert not loads(loaded, "sqlite_utils")


def test_control_a_run_with_its_own_policy_builds_it(firewall, proxy):
    """The same reading sees the compiled policy load when a run is given a policy file (compiled)."""
    path = firewall.write_policy("own.policy", "default allow\n")
    loaded = modules(
        ["run", "--no-isolate", "--policy", str(path), "--", "true"], firewall.home.parent, env=firewall.env
    )
    assert "firewall.policy.compiled" in loaded


def test_control_firewall_run_help_goes_to_typer(firewall):
    """Control: a command line of another shape (here --help) is still read by Typer, as before."""
    loaded = imported(["-m", "firewall", "run", "--help"], env=firewall.env)
    assert "typer" in loaded
    assert "mitmproxy" not in loaded


@pytest.mark.parametrize(
    "code",
    [
        "import firewall.state.schema",  # the migrations load sqlite_utils when wanted
        "import firewall.cli.main as m; m.app",
        "import firewall.proxy.master",
    ],
)
def test_control_a_module_that_loads_them_is_seen_loading_them(code: str):
    """The checks above are not vacuous: the same reading sees the heavy packages when they load."""
    assert imported(["-c", code]) & set(HEAVY)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--", "true"], RunArgs(["true"])),
        (["--agent", "ci", "--no-isolate", "--", "sh", "-c", "x"], RunArgs(["sh", "-c", "x"], "ci", no_isolate=True)),
        (["--agent=ci", "--policy", "a", "--policy=b", "--", "t"], RunArgs(["t"], "ci", [Path("a"), Path("b")])),
        (["--upstream-ca", "ca.pem", "--", "t", "--help"], RunArgs(["t", "--help"], upstream_ca=Path("ca.pem"))),
    ],
)
def test_plain_run_command_lines_are_read_without_typer(argv, expected):
    assert parse(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["true"],  # no `--`
        ["--"],  # no command
        ["--agent", "--", "true"],  # a value missing
        ["--agent", "a", "--agent", "b", "--", "true"],  # given twice
        ["--no-isolate", "--no-isolate", "--", "true"],
        ["--unknown", "--", "true"],
        ["--no-isolate=yes", "--", "true"],
        ["-h", "--", "true"],
    ],
)
def test_other_run_command_lines_are_left_to_typer(argv):
    assert parse(argv) is None


OPEN_PLAIN = (
    "import sys; from pathlib import Path; from firewall.state.db import open_plain; open_plain(Path(sys.argv[1]))"
)


def test_an_up_to_date_database_opens_without_the_migrations(tmp_path: Path):
    """`firewall run` opens the database with plain sqlite3 when this code already migrated it."""
    db = tmp_path / "firewall.db"
    open_database(db).conn.close()
    loaded = imported(["-c", OPEN_PLAIN, str(db)])
    assert "sqlite3" in loaded
    assert "sqlite_utils" not in loaded


def test_control_a_database_another_version_migrated_runs_the_migrations(tmp_path: Path):
    """A stamp that is not this code's (an older firewall migrated it, or none did) loads the
    migrations and applies what is due: here a table an older version did not have."""
    db = tmp_path / "firewall.db"
    open_database(db).conn.close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE agent_tokens")
    conn.execute("DELETE FROM _sqlite_migrations WHERE migration_set = 'agents'")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    assert "sqlite_utils" in imported(["-c", OPEN_PLAIN, str(db)])
    conn = open_plain(db)
    try:
        assert conn.execute("SELECT count(*) FROM agent_tokens").fetchone() == (0,)
        assert conn.execute("PRAGMA user_version").fetchone() == (schema_stamp(),)
    finally:
        conn.close()


def test_a_new_database_opened_plain_gets_every_table(tmp_path: Path):
    conn = open_plain(tmp_path / "firewall.db")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert {"agent_tokens", "policy_versions", "policy_active", "_sqlite_migrations"} <= tables


def test_the_stamp_covers_every_module_that_defines_migrations(tmp_path: Path):
    """A change to any migration module (a new migration) changes the stamp, so it is applied."""
    import firewall.state.schema as schema

    modules = [m for m in vars(schema).values() if getattr(m, "MIGRATIONS", None) in schema.MIGRATION_SETS]
    assert len(modules) == len(schema.MIGRATION_SETS)  # each set found in its module
    defining = {Path(m.__file__).name for m in modules}
    copy = tmp_path / "schema"
    shutil.copytree(state_db.SCHEMA_DIR, copy)
    stamp = schema_stamp(copy)
    assert stamp is not None and stamp == schema_stamp()
    for name in sorted(defining):
        source = copy / name
        original = source.read_bytes()
        source.write_bytes(original + b"\n# a new migration\n")
        assert schema_stamp(copy) != stamp, name
        source.write_bytes(original)
