"""Run a client twice inside one `firewall run`: as the run set it up, then with some variables
changed (the control: it must then fail, which shows those variables are what it reads).

    python twice.py OUT.json VAR[,VAR...] VALUE -- CMD ARGS...

VALUE `-` removes the variables instead. OUT gets {"given": run, "changed": run}, each
{"code", "stdout", "stderr"}, and "env": the environment the run gave.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def attempt(command: list[str], env: dict[str, str]) -> dict:
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        return {"code": None, "stdout": "", "stderr": "timed out after 60 s"}
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def main() -> None:
    out, names, value, separator, *command = sys.argv[1:]
    assert separator == "--", "usage: twice.py OUT VARS VALUE -- CMD..."
    given = dict(os.environ)
    changed = {k: v for k, v in given.items() if k not in names.split(",")}
    if value != "-":
        changed.update(dict.fromkeys(names.split(","), value))
    results = {"env": given, "given": attempt(command, given), "changed": attempt(command, changed)}
    with open(out, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
