from __future__ import annotations

from pathlib import Path

import pytest

from firewall.state.home import Home, open_home
from firewall.vault import PASSPHRASE_ENV


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh state folder in key-file mode."""
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    return open_home(tmp_path / "home")


@pytest.fixture
def passphrase_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh state folder whose vault will be created in passphrase mode."""
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    return open_home(tmp_path / "home")
