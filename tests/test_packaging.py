"""pyproject.toml lists the packages by hand (firewall.grammar lives outside firewall/):
every package under firewall/ must be in that list, or the wheel would ship without it."""

import tomllib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "firewall").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found | {"firewall.grammar"} == listed


def test_the_grammar_is_found_as_a_package_resource():
    grammar = resources.files("firewall.grammar").joinpath("policy.lark").read_text()
    assert "host_block:" in grammar
