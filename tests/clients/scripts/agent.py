"""An agent of the client matrix: run one client command, record what the agent had and got.

    python agent.py OUT.json -- CMD ARGS...

OUT gets {"env": this process's environment, "code", "stdout", "stderr", "seconds"}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> None:
    out, separator, *command = sys.argv[1:]
    assert separator == "--", "usage: agent.py OUT -- CMD..."
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        result = {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    except subprocess.TimeoutExpired:
        result = {"code": None, "stdout": "", "stderr": "timed out after 60 s"}
    result |= {"env": dict(os.environ), "seconds": time.monotonic() - started}
    with open(out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
