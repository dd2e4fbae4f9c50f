"""`firewall init` and `firewall secrets`, run as the real executable."""

from __future__ import annotations

import fcntl
import json
import os
import select
import stat
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import typer

from firewall.cli import secrets_cmd
from firewall.state.home import open_home
from firewall.vault import PASSPHRASE_ENV, Vault
from tests.support.logins import login_json

FIREWALL = str(Path(sys.executable).with_name("firewall"))
OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
OTHER_OPENAI_KEY = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0" * 2


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    return tmp_path / "home"


def run(root: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    environment.update(FIREWALL_HOME=str(root), **env)
    return subprocess.run(
        [FIREWALL, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def stored(root: Path, name: str) -> str:
    return Vault.open(open_home(root)).get(name)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_a_private_folder_and_key_and_is_idempotent(root: Path) -> None:
    first = run(root, "init")
    assert first.returncode == 0, first.stderr
    assert f"state folder: {root}" in first.stdout
    assert "(created)" in first.stdout
    assert mode_of(root) == 0o700
    assert mode_of(root / "master.key") == 0o600
    assert mode_of(root / "vault.json") == 0o600
    key, vault = (root / "master.key").read_bytes(), (root / "vault.json").read_bytes()

    second = run(root, "init")
    assert second.returncode == 0, second.stderr
    assert "(already set up)" in second.stdout
    assert (root / "master.key").read_bytes() == key
    assert (root / "vault.json").read_bytes() == vault


def test_init_with_a_passphrase_writes_no_key_file(root: Path) -> None:
    result = run(root, "init", **{PASSPHRASE_ENV: "long passphrase"})
    assert result.returncode == 0, result.stderr
    assert "never stored on disk" in result.stdout
    assert not (root / "master.key").exists()


def test_add_from_stdin_creates_the_state_folder_on_first_use(root: Path) -> None:
    result = run(root, "secrets", "add", "openai", "--stdin", stdin=OPENAI_KEY + "\n")
    assert result.returncode == 0, result.stderr
    assert 'stored "openai" (openai, fingerprint ' in result.stdout
    assert OPENAI_KEY not in result.stdout + result.stderr
    assert stored(root, "openai") == OPENAI_KEY


def test_add_from_env_and_from_file(root: Path, tmp_path: Path) -> None:
    from_env = run(root, "secrets", "add", "work", "-p", "openai", "--from-env", "MY_KEY", MY_KEY=OPENAI_KEY)
    assert from_env.returncode == 0, from_env.stderr
    token_file = tmp_path / "token"
    token_file.write_text("hunter2\r\n")
    from_file = run(root, "secrets", "add", "db", "--provider", "generic", "--file", str(token_file))
    assert from_file.returncode == 0, from_file.stderr
    assert stored(root, "work") == OPENAI_KEY
    assert stored(root, "db") == "hunter2"


def test_add_codex_login_from_file(root: Path, tmp_path: Path) -> None:
    login = login_json()
    (tmp_path / "auth.json").write_text(login)
    result = run(root, "secrets", "add", "codex", "--file", str(tmp_path / "auth.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads(stored(root, "codex")) == json.loads(login)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--from-env", "UNSET_VAR_FOR_TEST"), {}, "environment variable UNSET_VAR_FOR_TEST is not set"),
        (("--file", "/nonexistent/token"), {}, "/nonexistent/token: cannot read"),
        (("--stdin", "--from-env", "X"), {"X": "v"}, "give the value one way only, not --stdin and --from-env"),
        ((), {}, "no value given"),
    ],
)
def test_value_source_problems_are_one_line_errors(root: Path, args, env, message: str) -> None:
    result = run(root, "secrets", "add", "openai", *args, **env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_malformed_value_is_refused_without_echo_and_nothing_changes(root: Path) -> None:
    run(root, "init")
    before = (root / "vault.json").read_bytes()
    secret = "ghp_" + "x" * 36  # a real-looking GitHub token given as an OpenAI key
    result = run(root, "secrets", "add", "openai", "--stdin", stdin=secret)
    assert result.returncode == 1
    assert result.stderr.startswith('error: "ghp…" is not an openai key: it looks like a github key')
    assert secret not in result.stderr
    assert (root / "vault.json").read_bytes() == before


def test_unknown_name_needs_a_provider(root: Path) -> None:
    result = run(root, "secrets", "add", "mykey", "--stdin", stdin="v")
    assert result.returncode == 1
    assert '"mykey" is not a provider name, so pass --provider' in result.stderr


def test_duplicate_without_force_fails_and_leaves_the_file_byte_identical(root: Path) -> None:
    assert run(root, "secrets", "add", "openai", "--stdin", stdin=OPENAI_KEY).returncode == 0
    before = (root / "vault.json").read_bytes()
    result = run(root, "secrets", "add", "openai", "--stdin", stdin=OTHER_OPENAI_KEY)
    assert result.returncode == 1
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert (root / "vault.json").read_bytes() == before


def test_force_rotates_and_a_running_reader_sees_it(root: Path) -> None:
    assert run(root, "secrets", "add", "openai", "--stdin", stdin=OPENAI_KEY).returncode == 0
    reader = Vault.open(open_home(root))
    created = reader.entries()[0].created

    result = run(root, "secrets", "add", "openai", "--stdin", "--force", stdin=OTHER_OPENAI_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('rotated "openai"')
    assert reader.reload_if_changed() is True
    assert reader.get("openai") == OTHER_OPENAI_KEY
    assert reader.entries()[0].created == created


def test_rm_removes_and_a_missing_name_exits_1(root: Path) -> None:
    assert run(root, "secrets", "add", "openai", "--stdin", stdin=OPENAI_KEY).returncode == 0
    removed = run(root, "secrets", "rm", "openai")
    assert removed.returncode == 0, removed.stderr
    assert Vault.open(open_home(root)).names() == []
    missing = run(root, "secrets", "rm", "openai")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f'error: no secret named "openai" in vault {root / "vault.json"}'


def test_list_json_shows_metadata_and_never_the_value(root: Path) -> None:
    assert run(root, "secrets", "add", "openai", "--stdin", stdin=OPENAI_KEY).returncode == 0
    Vault.open(open_home(root)).mark_used(["openai"])
    result = run(root, "secrets", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert OPENAI_KEY not in result.stdout
    (entry,) = json.loads(result.stdout)
    assert set(entry) == {"name", "provider", "created", "updated", "last_used", "fingerprint"}
    assert (entry["name"], entry["provider"]) == ("openai", "openai")
    assert entry["last_used"] is not None

    table = run(root, "secrets", "list")
    header, row = table.stdout.splitlines()
    assert header.split("  ")[0] == "NAME" and "LAST USED" in header
    assert row.startswith("openai  openai")
    assert OPENAI_KEY not in table.stdout


def test_loose_vault_permissions_are_refused_with_the_fix(root: Path) -> None:
    run(root, "init")
    (root / "vault.json").chmod(0o644)
    result = run(root, "secrets", "list")
    assert result.returncode == 1
    assert f"fix with: chmod 600 {root / 'vault.json'}" in result.stderr


def test_wrong_passphrase_is_one_clear_error(root: Path) -> None:
    added = run(root, "secrets", "add", "openai", "--stdin", stdin=OPENAI_KEY, **{PASSPHRASE_ENV: "right"})
    assert added.returncode == 0, added.stderr
    assert not (root / "master.key").exists()
    wrong = run(root, "secrets", "list", **{PASSPHRASE_ENV: "wrong"})
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == f"error: wrong passphrase for vault {root / 'vault.json'}"
    unset = run(root, "secrets", "list")
    assert unset.returncode == 1
    assert f"set {PASSPHRASE_ENV}" in unset.stderr


def test_no_option_of_add_can_carry_the_value() -> None:
    """The value must never be in argv, where `ps` shows it to every user."""
    command = typer.main.get_command(secrets_cmd.app).commands["add"]  # type: ignore[attr-defined]
    takes_text = {param.name for param in command.params if not getattr(param, "is_flag", False)}
    assert takes_text == {"name", "provider", "from_env", "file"}  # a name, a provider, a variable name, a path


def _read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    seen = b""
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out waiting for {needle!r}; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.parametrize(
    "typed", [OPENAI_KEY, OPENAI_KEY + " ", "  " + OPENAI_KEY + "\t "], ids=["as-is", "trailing-space", "both-sides"]
)
def test_prompt_reads_the_value_without_echoing_it(root: Path, typed: str) -> None:
    """A key pasted with spaces around it is stored without them, as other tools' prompts do."""
    controller, terminal = os.openpty()

    def take_terminal() -> None:  # make the pty the child's controlling terminal, as in a real shell
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    environment = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    environment["FIREWALL_HOME"] = str(root)
    child = subprocess.Popen(
        [FIREWALL, "secrets", "add", "openai"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=environment,
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    os.close(terminal)
    try:
        deadline = time.monotonic() + 30
        output = _read_until(controller, b"(input hidden): ", deadline)
        os.write(controller, typed.encode() + b"\n")
        output += _read_until(controller, b"fingerprint", deadline)
        output += _read_until(controller, b"\n", deadline)
        assert child.wait(timeout=30) == 0, output
    finally:
        os.close(controller)
        if child.poll() is None:
            child.kill()
    assert b'stored "openai"' in output
    assert OPENAI_KEY.encode() not in output
    assert stored(root, "openai") == OPENAI_KEY
