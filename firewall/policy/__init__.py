"""The policy language: parse → compile → decide, each stage with its own errors.

The names below load on first use (PEP 562): reading a compiled policy (`CompiledPolicy`, what
`firewall run` and the proxy need) must not load the parser and compiler (lark and the
grammar: a tenth of a second of every `firewall run`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from firewall.lazy import lazy_names

if TYPE_CHECKING:
    from firewall.policy.compile_tests import ExpectCase
    from firewall.policy.compiled import CompiledPolicy
    from firewall.policy.compiler import CompileResult
    from firewall.policy.decision import (
        BudgetRef,
        Decision,
        Injection,
        LimitRef,
        Mode,
        Reason,
        Request,
        RuleRef,
        Verdict,
    )
    from firewall.policy.engine import decide
    from firewall.policy.errors import CompileError, PolicyError, PolicySyntaxError
    from firewall.policy.loader import compile_source, load_policy

_WHERE = {
    "ExpectCase": "compile_tests",
    "CompiledPolicy": "compiled",
    "CompileResult": "compiler",
    "BudgetRef": "decision",
    "Decision": "decision",
    "Injection": "decision",
    "LimitRef": "decision",
    "Mode": "decision",
    "Reason": "decision",
    "Request": "decision",
    "RuleRef": "decision",
    "Verdict": "decision",
    "decide": "engine",
    "CompileError": "errors",
    "PolicyError": "errors",
    "PolicySyntaxError": "errors",
    "compile_source": "loader",
    "load_policy": "loader",
}

__all__ = [
    "CompileError",
    "CompileResult",
    "CompiledPolicy",
    "Decision",
    "ExpectCase",
    "Injection",
    "BudgetRef",
    "LimitRef",
    "Mode",
    "PolicyError",
    "PolicySyntaxError",
    "Reason",
    "Request",
    "RuleRef",
    "Verdict",
    "compile_source",
    "decide",
    "load_policy",
]


__getattr__ = lazy_names(__name__, _WHERE)
