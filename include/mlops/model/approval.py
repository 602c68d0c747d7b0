"""A person's approval of a promotion: the request's evidence, and acting on the answer.

In promotion mode ``approval`` the gate records ``awaiting_approval``; the training DAG then asks
a person (``mlops.orchestration.approval``) with :func:`approval_request` as the request's text,
and :func:`apply_approval` acts on the answer (or its absence) and records it in the ledger.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops.core.results import APPROVAL_ANSWERS, Cause, Outcome, PromotionRecord
from mlops.model import evidence, registry, tags
from mlops.model.promotion import APPROVE

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

log = logging.getLogger(__name__)


def describe_cause(cause: Cause | None) -> str:
    """One line for a run's trigger: ``user admin``, ``upstream request r-17 (user svc)``, ..."""
    if not cause:
        return "unknown"
    text = {"user": "user", "upstream": "upstream request", "drift": "drift check", "schedule": "schedule",
            "asset": "new data", "unknown": "unknown"}[cause["kind"]]  # fmt: skip
    if cause["kind"] == "user":
        return f"user {cause['user']}"
    return (
        text
        + (f" {cause['ref']}" if cause.get("ref") else "")
        + (f" (user {cause['user']})" if cause.get("user") else "")
    )


def approval_request(entry: PromotionRecord, use_case: UseCase) -> tuple[str, str]:
    """Subject and body (Markdown) of the human-approval request: the gate's evidence."""
    subject = f"Promote {use_case.registered_model_name} v{entry['version']} to champion?"
    metrics = entry.get("challenger_metrics") or {}
    lines = [
        f"**Use case** {use_case.name} · **challenger** v{entry['version']} · **champion now** "
        f"{'v' + entry['champion_before'] if entry['champion_before'] else 'none'}",
        "",
        f"**Gate** {_md(entry['reason'].removeprefix('awaiting approval: '))}",
        "",
        "| metric | challenger |",
        "|---|---|",
        *[f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items())],
        "",
        *(
            [f"**Decision threshold** {_md(evidence.threshold_text(entry))}", ""]
            if entry.get("decision_threshold")
            else []
        ),
        f"Holdout rows: {entry.get('holdout_rows', 'n/a')} · MLflow run: {entry.get('mlflow_run_url', 'n/a')}",
        "",
        *_evidence_lines(entry),
        f"**Triggered by** {describe_cause(entry.get('triggered_by'))} · **may approve** "
        f"{', '.join(eligible_approvers(use_case, entry.get('triggered_by')) or []) or 'any user but the trigger'}",
        "",
        f"Approve moves the `champion` alias to v{entry['version']}; Reject, or no answer within "
        f"{use_case.promotion.approval_timeout_hours:g} hours, leaves production as it is.",
    ]
    return subject, "\n".join(lines)


def _md(value: object) -> str:
    """A record's value as literal Markdown text (a slice value comes from the data)."""
    text = " ".join(str(value).split())
    return "".join("\\" + ch if ch in "\\`*_{}[]<>()#+!|~" else ch for ch in text)


def _evidence_lines(entry: PromotionRecord) -> list[str]:
    """The request's evidence beyond the metrics: baseline, blocking slices, freshness, failed checks and
    the evidence page."""
    lines = []
    baseline = entry.get("baseline")
    if baseline:
        lines += [
            f"**Baseline** ({_md(baseline.get('strategy'))}) {_md(baseline.get('metric'))} "
            f"{baseline['value']:.4f} · challenger {baseline['improvement']:+.4f}, interval "
            f"{evidence.interval(baseline)} · margin {baseline['margin']:g} · "
            f"{'passed' if baseline['passed'] else 'FAILED'}",
            "",
        ]
    blocking = [s for s in entry.get("slices") or [] if s.get("blocking") or s.get("blocks")]
    if blocking:
        lines += ["| blocking slice | rows | status | vs champion | vs baseline |", "|---|---|---|---|---|"]
        for s in blocking:
            label = evidence.slice_label(s)
            status = _md(s["status"]) + (" **blocks**" if s.get("blocks") else "")
            lines.append(
                f"| {_md(label)} | {s.get('rows')} | {status} | {evidence.interval(s.get('vs_champion'))} "
                f"| {evidence.interval(s.get('vs_baseline'))} |"
            )
        lines.append("")
    freshness = entry.get("freshness")
    if freshness:
        champion_end = freshness.get("champion_window_end") or "n/a"
        stale = " · **stale**" + (" (accepted by request)" if freshness.get("accepted_by_request") else "")
        lines += [
            f"**Data** challenger's window ends {freshness.get('challenger_window_end')} · champion's ends "
            f"{champion_end}{stale if freshness.get('stale') else ''}",
            "",
        ]
    failed = entry.get("failed_checks")
    if failed:
        lines += ["**Failed checks**", *[f"- {_md(check)}" for check in failed], ""]
    if entry.get("evidence_html_uri"):
        lines += [f"**Evidence** `{entry['evidence_html_uri']}`", ""]
    return lines


def eligible_approvers(use_case: UseCase, triggered_by: Cause | None) -> list[str] | None:
    """Who may answer the request: the configured approvers less the run's trigger; None: any user.

    Four eyes: the user who triggered the run never approves it. With ``promotion.approvers``
    set, Airflow itself lets only these users answer (the request's assigned users); either way
    :func:`apply_approval` refuses an approval that breaks the rule.
    """
    if not use_case.promotion.approvers:
        return None
    trigger = triggered_by["user"] if triggered_by else None
    return [user for user in use_case.promotion.approvers if user != trigger]


def _refusal(use_case: UseCase, gate: PromotionRecord, user: dict[str, Any]) -> str | None:
    """Why this user may not approve this run's challenger, or None."""
    ids = {str(v) for v in (user.get("id"), user.get("name")) if v}
    cause = gate.get("triggered_by")
    trigger = cause["user"] if cause else None
    if trigger and trigger in ids:
        return f"{trigger} triggered this run and cannot also approve it (four eyes)"
    approvers = use_case.promotion.approvers
    if approvers and not ids & set(approvers):
        return f"{' / '.join(sorted(ids))} is not one of the use case's approvers ({', '.join(approvers)})"
    return None


def apply_approval(
    use_case: UseCase,
    gate: PromotionRecord,
    response: dict[str, Any] | None,
    lake: Lake,
    *,
    dag_id: str,
    airflow_run_id: str,
) -> PromotionRecord:
    """Act on a person's answer to an approval request and record it in the ledger (safe to repeat).

    ``response`` is the human-in-the-loop task's result (``chosen_options``, ``responded_by_user``,
    ``params_input``); a timed-out request carries the default, Reject, and no user. Approve moves
    the champion alias only if the champion is still the one the gate compared against.
    """
    client = registry.configure_mlflow()
    name, version = use_case.registered_model_name, gate["version"]
    for done in registry.promotion_history(lake, use_case.name):
        if (
            done["airflow_run_id"] == airflow_run_id
            and str(done["version"]) == version
            and done["outcome"] in APPROVAL_ANSWERS
        ):
            return done
    response = response or {}
    chosen = list(response.get("chosen_options") or [])
    user = response.get("responded_by_user") or None
    who = (user.get("name") or user.get("id")) if isinstance(user, dict) else None
    comment = str((response.get("params_input") or {}).get("comment") or "").strip()[:1000]
    current = registry.alias_version(client, name, registry.CHAMPION)
    current_version = str(current.version) if current is not None else None
    promoted = False
    outcome: Outcome
    refusal = (
        _refusal(use_case, gate, user) if chosen == [APPROVE] and who and isinstance(user, dict) else None
    )
    if refusal:
        outcome, note = "approval_refused", f"approval refused: {refusal}; nothing moved"
    elif chosen == [APPROVE] and who:
        if current_version == version:
            outcome, note = (
                "approved",
                f"approved by {who}; v{version} is the champion",
            )  # a retry after the move
            promoted = True
        elif current_version != gate["champion_before"]:
            outcome = "approval_stale"
            note = (
                f"approved by {who}, but the champion changed from v{gate['champion_before']} to v{current_version} "
                "while the request waited; nothing moved. Re-run training to compare against the new champion."
            )
        else:
            registry.apply_aliases(client, use_case, version, True, gate["champion_before"])
            outcome, note, promoted = "approved", f"approved by {who}", True
    elif who:
        outcome, note = "rejected_by_reviewer", f"rejected by {who}"
    else:
        outcome, note = (
            "approval_timed_out",
            (f"no answer within {use_case.promotion.approval_timeout_hours:g} hours: not promoted"),
        )
    reason = f"{note}{': ' + comment if comment else ''} (gate: {gate['reason'].removeprefix('awaiting approval: ')})"
    registry.tag_version(client, name, version, tags.promotion(outcome, reason))
    entry = PromotionRecord(
        **{
            k: v
            for k, v in gate.items()
            if k not in ("decided_at", "outcome", "promoted", "reason", "aliases_after")
        },  # type: ignore[typeddict-item]
        decided_at=registry.now_iso(),
        outcome=outcome,
        promoted=promoted,
        reason=reason,
        aliases_after=registry.aliases_after(version, promoted, gate["champion_before"])
        if promoted
        else {"champion": current_version, "previous_champion": None},
        reviewed_by=who,
        reviewed_at=str(response.get("responded_at") or "") or None,
        review_comment=comment,
    )
    entry["evidence_uri"], entry["evidence_html_uri"] = evidence.write_pack(lake, entry)
    registry.record_decision(lake, use_case.name, entry)
    log.info("approval of %s v%s: %s - %s", name, version, outcome, reason)
    return entry
