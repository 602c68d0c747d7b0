"""A person's answer to a promotion request: who may give it, and what it does (four eyes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops.core.results import Cause, PromotionRecord
from mlops.model import registry
from mlops.model.approval import apply_approval, approval_request, eligible_approvers


def _pending(fresh_home: Path, approvers: list[str]) -> tuple[Any, Any, Any, PromotionRecord]:
    """v1 is the champion; the gate would promote v2 and waits for a person; alice triggered the run."""
    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake

    client = registry.configure_mlflow()
    base = get_use_case("churn")
    use_case = base.model_copy(
        update={"promotion": base.promotion.model_copy(update={"approvers": approvers})}
    )
    name = use_case.registered_model_name
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=f"file://{fresh_home}/models/m")
    client.set_registered_model_alias(name, registry.CHAMPION, "1")
    gate = PromotionRecord(
        use_case="churn",
        decided_at=registry.now_iso(),
        version="2",
        champion_before="1",
        outcome="awaiting_approval",
        promoted=False,
        reason="awaiting approval: beats champion on roc_auc",
        airflow_dag_id="churn_training",
        airflow_run_id="manual__alice",
        triggered_by=Cause(kind="user", user="alice", ref=None),
    )
    return client, use_case, get_lake(), gate


def _answer(choice: str, user: str) -> dict[str, Any]:
    return {
        "chosen_options": [choice],
        "responded_by_user": {"id": user, "name": user},
        "params_input": {"comment": "ok"},
    }


@pytest.mark.parametrize(
    ("approvers", "user", "outcome", "says"),
    [
        pytest.param(
            [],
            "alice",
            "approval_refused",
            "alice triggered this run and cannot also approve it",
            id="self-approval",
        ),
        pytest.param(
            ["carol"],
            "bob",
            "approval_refused",
            "bob is not one of the use case's approvers (carol)",
            id="not-an-approver",
        ),
        pytest.param(
            ["alice"], "alice", "approval_refused", "four eyes", id="the-only-approver-triggered-it"
        ),
        pytest.param([], "bob", "approved", "approved by bob", id="someone-else"),
        pytest.param(["carol"], "carol", "approved", "approved by carol", id="a-listed-approver"),
    ],
)
def test_who_may_approve_is_enforced_where_the_answer_is_acted_on(
    fresh_home: Path, approvers: list[str], user: str, outcome: str, says: str
) -> None:
    client, use_case, lake, gate = _pending(fresh_home, approvers)
    entry = apply_approval(
        use_case,
        gate,
        _answer("Approve", user),
        lake,
        dag_id="churn_training",
        airflow_run_id="manual__alice",
    )
    assert entry["outcome"] == outcome and says in entry["reason"]
    assert entry["reviewed_by"] == user and entry["triggered_by"]["user"] == "alice"
    champion = registry.alias_version(client, use_case.registered_model_name, registry.CHAMPION)
    assert str(champion.version) == ("2" if outcome == "approved" else "1")
    assert registry.promotion_history(lake, "churn")[-1]["outcome"] == outcome  # in the ledger, with who


def test_a_rejection_by_the_trigger_still_counts(fresh_home: Path) -> None:
    """Four eyes guards promotion: anyone allowed may say no, including the run's trigger."""
    client, use_case, lake, gate = _pending(fresh_home, [])
    entry = apply_approval(
        use_case,
        gate,
        _answer("Reject", "alice"),
        lake,
        dag_id="churn_training",
        airflow_run_id="manual__alice",
    )
    assert entry["outcome"] == "rejected_by_reviewer"
    assert (
        str(registry.alias_version(client, use_case.registered_model_name, registry.CHAMPION).version) == "1"
    )


def test_the_request_names_its_trigger_and_who_may_answer(fresh_home: Path) -> None:
    _, use_case, _, gate = _pending(fresh_home, ["alice", "carol"])
    assert eligible_approvers(use_case, gate["triggered_by"]) == ["carol"]
    _, body = approval_request(gate, use_case)
    assert "**Triggered by** user alice" in body and "**may approve** carol" in body


def test_the_answer_is_recorded_with_its_evidence_pack(fresh_home: Path) -> None:
    from mlops.core import layout

    _, use_case, lake, gate = _pending(fresh_home, [])
    answer = _answer("Approve", "bob")
    run = "manual__alice"
    entry = apply_approval(use_case, gate, answer, lake, dag_id="churn_training", airflow_run_id=run)
    [recorded] = registry.promotion_history(lake, "churn")
    assert recorded["evidence_uri"] == lake.uri(layout.evidence_record("churn", entry["decided_at"], "2"))
    assert recorded["evidence_html_uri"] == lake.uri(layout.evidence_page("churn", entry["decided_at"], "2"))
    page = lake.read_bytes(layout.evidence_page("churn", entry["decided_at"], "2")).decode()
    assert "approved by bob" in page and 'data-outcome="approved"' in page
    assert lake.read_json(layout.evidence_record("churn", entry["decided_at"], "2"))["reviewed_by"] == "bob"
