"""The policy language: parse → compile → decide, each stage with its own errors."""

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
