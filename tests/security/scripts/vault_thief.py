"""An agent that knows where the firewall keeps its state and tries to decrypt the vault with
anything it can read: its environment, every process's environment and command line it can
open under /proc, and every file of the state folder (a key file, if there is one).

Usage: vault_thief.py STATE_FOLDER OUT_FILE
Writes JSON: whether it decrypted the vault, what it tried, and everything it read (the test
greps that for the passphrase).
"""

import json
import os
import re
import sys
from pathlib import Path

home, out_file = Path(sys.argv[1]), sys.argv[2]
LOOKS_SECRET = re.compile(r"PASS|KEY|SECRET|TOKEN", re.I)

read: dict[str, str] = {}
candidates: set[str] = set()


def note(name: str, data: bytes) -> None:
    read[name] = data.decode("utf-8", "replace")


for name, value in os.environ.items():
    if LOOKS_SECRET.search(name):
        candidates.add(value)
for proc in Path("/proc").iterdir():
    if not proc.name.isdigit():
        continue
    for part in ("environ", "cmdline"):
        try:
            data = (proc / part).read_bytes()
        except OSError:
            continue
        note(f"{proc}/{part}", data)
        if part == "environ":
            for entry in data.split(b"\0"):
                name, _, value = entry.decode("utf-8", "replace").partition("=")
                if LOOKS_SECRET.search(name) and value:
                    candidates.add(value)
        elif b"firewall" in data:  # the firewall's own processes: their arguments are worth a try
            candidates.update(arg for arg in data.decode("utf-8", "replace").split("\0") if 8 <= len(arg) <= 256)
for path in home.rglob("*"):
    if path.is_file():
        try:
            note(str(path), path.read_bytes())
        except OSError:
            pass

from firewall.state.home import Home  # noqa: E402  (the thief uses the firewall's own code)
from firewall.vault import Vault, VaultError  # noqa: E402

decrypted = None
attempts = ["key file"] + sorted(candidates)
for attempt in attempts:
    os.environ.pop("FIREWALL_PASSPHRASE", None)
    if attempt != "key file":
        os.environ["FIREWALL_PASSPHRASE"] = attempt
    try:
        decrypted = Vault.open(Home(home)).values()
        break
    except (VaultError, OSError, ValueError):
        continue
    except Exception:  # noqa: BLE001  (a thief tries everything)
        continue

with open(out_file, "w") as handle:
    json.dump({"decrypted": decrypted, "attempts": len(attempts), "pid": os.getpid(), "read": read}, handle)
