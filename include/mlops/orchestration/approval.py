"""Human approval of a promotion: Airflow's human-in-the-loop request, with the gate's evidence.

In promotion mode ``approval`` the gate records ``awaiting_approval`` and sets the ``challenger``
alias; the training DAG's ``approve_promotion`` task then asks a person. It is a
``HITLOperator`` (standard provider) with two options, so it shows in Airflow's Required Actions,
on the ML platform page, and in the REST API
(``PATCH /api/v2/dags/<dag>/dagRuns/<run>/taskInstances/approve_promotion/-1/hitlDetails``). No
answer within ``promotion.approval_timeout_hours`` resolves it with the default, Reject.
``apply_approval`` (``mlops.model.approval``) acts on the answer and records it in the ledger.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param

from mlops.core.config import UseCase
from mlops.model.promotion import APPROVE, REJECT

TASK_ID = "approve_promotion"


class PromotionApproval(HITLOperator):
    """Asks whether the gate's challenger may become champion; the request carries the evidence."""

    def __init__(self, *, use_case_name: str, gate_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case_name = use_case_name
        self.gate_task_id = gate_task_id

    def execute(self, context: Any) -> Any:
        from mlops.core.config import get_use_case
        from mlops.model.approval import approval_request, eligible_approvers

        use_case = get_use_case(self.use_case_name)
        entry = context["ti"].xcom_pull(task_ids=self.gate_task_id)
        self.subject, self.body = approval_request(entry, use_case)
        approvers = eligible_approvers(use_case, entry.get("triggered_by"))
        if approvers is not None:
            if not approvers:  # the only approver triggered the run: nobody may answer
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(
                    f"nobody may approve v{entry['version']}: the only approvers ({', '.join(use_case.promotion.approvers)}) "
                    "include the user who triggered the run (four eyes); add an approver to promotion.approvers"
                )
            # Airflow lets only these users answer (its API checks the request's assigned users).
            self.assigned_users = [{"id": user, "name": user} for user in approvers]
        return super().execute(context)


def approval_task(use_case: UseCase, *, gate_task_id: str) -> PromotionApproval:
    return PromotionApproval(
        task_id=TASK_ID,
        use_case_name=use_case.name,
        gate_task_id=gate_task_id,
        subject=f"Promote a new {use_case.registered_model_name} version to champion?",
        body="The gate's evidence is filled in when the request is made.",
        options=[APPROVE, REJECT],
        defaults=[REJECT],
        params={
            "comment": Param(
                "",
                type="string",
                maxLength=1000,
                title="Comment",
                description="Why (recorded in the promotion ledger).",
            )
        },
        response_timeout=timedelta(hours=use_case.promotion.approval_timeout_hours),
        retries=0,
    )
