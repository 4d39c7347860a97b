"""Fault-injection points for the crash tests: a test makes a publishing process kill itself
(SIGKILL, as a power cut would) at a named point, so that a crash between two steps is
reproducible rather than a race.

Set ``PLACELINK_FAULT_INJECTION_UNSAFE`` to one point's name (:data:`POINTS`) in the
environment of the process under test. Never set it on a real node: it exists for
tests/e2e/test_publish_resume.py and does nothing when unset.
"""

from __future__ import annotations

import os
import signal

FAULT_VARIABLE = "PLACELINK_FAULT_INJECTION_UNSAFE"
POINTS = frozenset(
    {
        "after-pending-saved",  # the pending publication is on disk; nothing sent yet
        "after-commit",  # the service stored the batch; the pseudonym map is not promoted
        "after-promote",  # the map is promoted; the pending files are not deleted yet
    }
)


def fault_point(name: str) -> None:
    """Die here, at once and without cleaning up, if the fault-injection variable names this
    point; otherwise do nothing."""
    assert name in POINTS, name
    if os.environ.get(FAULT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
