"""Run the real `firewall` CLI with its stdout on a pseudo-terminal of a given size, as a person's
terminal would be, and read what it wrote (bounded in time)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

FIREWALL = str(Path(sys.executable).parent / "firewall")
# What decides colour and width: left out of the tests' environment unless a test sets it.
COLOUR_VARIABLES = ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM", "COLORTERM", "TTY_COMPATIBLE")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in COLOUR_VARIABLES}
    env.update({"FIREWALL_HOME": str(home), "TERM": "xterm-256color", **extra})
    return env


class Terminal:
    """`firewall ARGS` with stdout and stderr on a pty `columns` wide."""

    def __init__(self, env: dict[str, str], *args: str, columns: int = 80) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR  # keep "\n" as the program wrote it
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.process = subprocess.Popen(
            [FIREWALL, *args], env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.output = b""
        self.ended = False

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def read_until(self, done: Callable[[str], object], timeout: float = 30) -> str:
        """Read until `done(text so far)` holds or the program's output ends; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while not done(self.text) and not self.ended:
            left = deadline - time.monotonic()
            assert left > 0, f"not as expected within {timeout}s:\n{self.text}"
            if select.select([self.master], [], [], min(left, 0.2))[0]:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the program ended and everything it wrote was read
                    chunk = b""
                self.output += chunk
                self.ended = not chunk
        return self.text

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        os.close(self.master)


def run_on_terminal(env: dict[str, str], *args: str, columns: int = 80) -> str:
    """Everything `firewall ARGS` wrote to a terminal `columns` wide, once it ended."""
    terminal = Terminal(env, *args, columns=columns)
    try:
        return terminal.read_until(lambda _: False, 60)
    finally:
        terminal.close()
