"""Fault points: the worst moments of each side effect, where a fault test kills the process.

Each side effect of the platform (archive, quarantine, materialize, register, promote, score,
alert, trigger) has one named point between its first durable write and the write that commits
it. Normally nothing happens there. A fault-injection test (``tests/faults/test_sigkill.py``)
sets ``MLOPS_FAULT_POINT`` to a name and runs the task in a child process, which dies with
SIGKILL at that point (no cleanup, no ``finally``, no exception handler runs, as when the kernel's
OOM killer or a lost node ends a worker); the test then retries the task and checks that nothing
was lost, half-visible or duplicated.
"""

from __future__ import annotations

import os
import signal

from mlops.core.settings import fault_point

POINTS = {
    "archive": "raw object written, manifest (the pointer) not yet moved",
    "quarantine": "rejected batch copied to quarantine, its reason (written last) not yet written",
    "materialize": "feature partition written, its manifest (or COMMIT) not yet written",
    "register": "model version registered, its lineage tags not yet set",
    "promote": "champion alias moved, the decision not yet recorded",
    "score": "predictions written, their manifest not yet written",
    "alert": "alert posted to Slack, not yet recorded as sent",
    "trigger": "retrain claimed in the guard's state, the trigger not yet handed to Airflow",
}


def point(name: str) -> None:
    """Die here, at once and without cleanup, if this is the fault point under test."""
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}; known: {', '.join(POINTS)}")
    if fault_point() == name:
        os.kill(os.getpid(), signal.SIGKILL)
