"""The policy's embedded golden tests: allow/deny cases with the rule ids that must decide them.

A test passes when the decision's outcome is the expected one and its deciding rules are
exactly the listed ones (order aside). Running no test at all is a failure, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.model import GoldenTest, Policy
from policies.rules import Decision, decide


@dataclass(frozen=True)
class GoldenResult:
    index: int
    test: GoldenTest
    decision: Decision

    @property
    def passed(self) -> bool:
        return self.decision.outcome == self.test.expect and set(self.decision.rules) == set(
            self.test.rules
        )

    def describe(self) -> str:
        got = f"{self.decision.outcome} by [{', '.join(self.decision.rules)}]"
        want = f"{self.test.expect} by [{', '.join(self.test.rules)}]"
        verdict = "ok  " if self.passed else "FAIL"
        return f"{verdict} {self.test.name}: expected {want}, got {got} ({self.decision.reason})"


def run_golden_tests(policy: Policy) -> list[GoldenResult]:
    return [
        GoldenResult(index, test, decide(policy, test.request))
        for index, test in enumerate(policy.tests)
    ]
