"""What an agent can see of the firewall's state: writes JSON to OUT.   python peek.py OUT STATE_DIR"""

import json
import os
import sys

out, state = sys.argv[1], sys.argv[2]
seen = {"pid": os.getpid(), "listing": None, "read": {}, "environ_with_home": [], "pids": []}
try:
    seen["listing"] = sorted(os.listdir(state))
except OSError as exc:
    seen["listing"] = f"{type(exc).__name__}: {exc}"
for name in ("firewall.db", "vault.json", "master.key", "ca/mitmproxy-ca.pem"):
    try:
        with open(os.path.join(state, name), "rb") as handle:
            seen["read"][name] = len(handle.read())
    except OSError as exc:
        seen["read"][name] = f"{type(exc).__name__}"
for entry in os.listdir("/proc"):
    if entry.isdigit():
        seen["pids"].append(int(entry))
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if b"FIREWALL_HOME=" in handle.read():
                    seen["environ_with_home"].append(int(entry))
        except OSError:
            pass
with open(out + ".tmp", "w") as handle:
    json.dump(seen, handle)
os.rename(out + ".tmp", out)
