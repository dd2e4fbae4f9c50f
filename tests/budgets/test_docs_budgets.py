"""docs/budgets.md stays true: its policy examples compile without warnings and their tests hold."""

from __future__ import annotations

import re
from pathlib import Path

from firewall.policy import compile_source
from firewall.policy.testing import run_tests

PAGE = Path(__file__).parents[2] / "docs" / "budgets.md"
EXAMPLES = re.findall(r"^```policy\n(.*?)^```$", PAGE.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def test_the_examples_compile_and_hold():
    assert EXAMPLES
    for source in EXAMPLES:
        result = compile_source(source, PAGE.name)
        assert [w.render() for w in result.warnings] == []
        assert all(r.passed for r in run_tests(result.policy, result.tests))
        assert result.policy.blocks[0].budgets


def test_the_page_names_the_shipped_price_date():
    from firewall.budgets.prices import PRICES_CHECKED, PRICES_TAKEN

    assert PRICES_TAKEN in PAGE.read_text(encoding="utf-8")
    assert PRICES_CHECKED in PAGE.read_text(encoding="utf-8")


def test_the_page_says_where_each_shipped_price_was_checked():
    """Every model of the shipped table is in the page's table of checks, and nothing else is."""
    import re

    from firewall.budgets.prices import SHIPPED

    text = PAGE.read_text(encoding="utf-8")
    checks = text[text.index("| model |") :]
    listed = set(re.findall(r"^\| `([^`]+)` \|", checks, re.MULTILINE))
    assert listed == set(SHIPPED)
