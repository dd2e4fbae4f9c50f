"""An agent that shows what it was given: its environment, every file in $CODEX_HOME, and what the
proxy answers when it tries Codex's own token refresh. Prints one JSON object."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx


def main() -> None:
    home = Path(os.environ["CODEX_HOME"])
    files = {
        str(path.relative_to(home)): {"text": path.read_text(), "mode": stat.S_IMODE(path.stat().st_mode)}
        for path in sorted(home.rglob("*"))
        if path.is_file()
    }
    refresh = httpx.post(os.environ["CODEX_REFRESH_TOKEN_URL_OVERRIDE"], json={"grant_type": "refresh_token"})
    print(
        json.dumps(
            {
                "env": dict(os.environ),
                "home": str(home),
                "files": files,
                "refresh_status": refresh.status_code,
                "refresh_body": refresh.text,
            }
        )
    )


if __name__ == "__main__":
    main()
