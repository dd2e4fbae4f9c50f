"""Hold a `firewall run` open: write this process's environment to READY, then wait for GO.

    python hold.py READY GO [SECONDS]

Exits 0 once GO exists, 1 if it did not appear within SECONDS (default 30).
"""

import json
import os
import sys
import time

ready, go, *rest = sys.argv[1:]
with open(ready + ".tmp", "w") as handle:
    json.dump(dict(os.environ), handle)
os.rename(ready + ".tmp", ready)  # the test never reads a half-written file
deadline = time.monotonic() + float(rest[0] if rest else 30)
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.02)
