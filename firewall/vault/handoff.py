"""Keeping the vault passphrase out of every environment an agent could read.

Any process of the same OS user can read `/proc/PID/environ` of another: it
holds the environment the process was started with, and unsetting a variable
afterwards does not erase it. So in passphrase mode the passphrase never stays
in the environment of a process that lives while agents run:

- `firewall run` and `firewall proxy start --foreground`, started with
  `FIREWALL_PASSPHRASE` set, at once re-execute themselves (same pid) with the
  variable removed and the passphrase on an inherited pipe;
- a proxy started in the background gets it on its stdin;
- `FIREWALL_PASSPHRASE_FD` names that pipe; the process reads it once at
  start (`adopt()`), closes it and keeps the passphrase in memory only.

Agents get neither variable: `firewall run` passes on no `FIREWALL_*` variable.
"""

from __future__ import annotations

import os
import sys

from firewall.vault.errors import VaultError

PASSPHRASE_ENV = "FIREWALL_PASSPHRASE"
PASSPHRASE_FD_ENV = "FIREWALL_PASSPHRASE_FD"
MAX_PASSPHRASE_BYTES = 4096  # far below a pipe's buffer, so writing it never blocks

_held: str | None = None


def held() -> str | None:
    """The passphrase this process was handed by pipe, if any."""
    return _held


def adopt() -> None:
    """Read the passphrase from the pipe `FIREWALL_PASSPHRASE_FD` names, then close it."""
    global _held
    fd_text = os.environ.pop(PASSPHRASE_FD_ENV, None)
    if fd_text is None:
        return
    try:
        fd = int(fd_text)
        chunks = []
        while chunk := os.read(fd, MAX_PASSPHRASE_BYTES + 1):
            chunks.append(chunk)
    except (ValueError, OSError) as exc:
        raise VaultError(f"{PASSPHRASE_FD_ENV}={fd_text!r}: cannot read the passphrase: {exc}") from None
    _close(fd)
    passphrase = b"".join(chunks).decode("utf-8")
    if not passphrase:
        raise VaultError(f"the passphrase handed over on {PASSPHRASE_FD_ENV} is empty")
    _held = passphrase


def _close(fd: int) -> None:
    os.close(fd)
    if fd == 0:  # keep a valid stdin: an empty one
        devnull = os.open(os.devnull, os.O_RDONLY)
        if devnull != 0:
            os.dup2(devnull, 0)
            os.close(devnull)


def reexec_without_passphrase_env(module: str = "firewall") -> None:
    """If `FIREWALL_PASSPHRASE` is in this process's environment, replace the process with the
    same command (`python -m MODULE ARGS`), without it in the environment, the passphrase
    following on a pipe."""
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase is None:
        return
    data = passphrase.encode("utf-8")
    if not data:
        raise VaultError(f"{PASSPHRASE_ENV} is set but empty; set a passphrase or unset it")
    if len(data) > MAX_PASSPHRASE_BYTES:
        raise VaultError(f"{PASSPHRASE_ENV} is longer than {MAX_PASSPHRASE_BYTES} bytes")
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    env = {name: value for name, value in os.environ.items() if name != PASSPHRASE_ENV}
    env[PASSPHRASE_FD_ENV] = str(read_end)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)


def for_child(env: dict[str, str]) -> tuple[dict[str, str], bytes | None]:
    """(`env` without the passphrase variables, the passphrase for the child's stdin or None).

    The child is a firewall process: it reads its stdin at start (`adopt`)."""
    passphrase = _held if _held is not None else os.environ.get(PASSPHRASE_ENV) or None
    clean = {name: value for name, value in env.items() if name not in (PASSPHRASE_ENV, PASSPHRASE_FD_ENV)}
    if passphrase is None:
        return clean, None
    clean[PASSPHRASE_FD_ENV] = "0"
    return clean, passphrase.encode("utf-8")
