"""Token and cost budgets, counted from the answers (docs/budgets.md).

Pure code: reading usage out of answers (`usage.py`, `stream.py`), prices
(`prices.py`), calendar windows (`windows.py`). The proxy feeds it bytes and
keeps the counts; the policy engine names the budgets a request counts against.
"""
