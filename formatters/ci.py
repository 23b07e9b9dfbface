"""CI results: a failure is posted loudly; success and pending post nothing.

Green runs add no noise at all (no message, no reaction): the room learns about CI only
when someone has to act. Failures name the repository, branch or commit and link the run.
"""

from __future__ import annotations

from core.events import StatusEvent, WorkflowJobEvent, WorkflowRunEvent
from formatters.common import headline
from formatters.rendered import Rendered
from formatters.safe import clip, cut, esc

FAILED_STATES = frozenset({"failure", "error"})
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})


def _where(branch: str, sha: str) -> str:
    short, branch = sha[:7], clip(branch)
    if branch and short:
        return f" on {branch} ({short})"
    return f" on {branch or short}" if branch or short else ""


def _failed(
    event: StatusEvent | WorkflowRunEvent | WorkflowJobEvent,
    what: str,
    where: str,
    url: str,
    detail: str = "",
) -> Rendered:
    return headline(
        event,
        f"❌ CI failed: {what}{where}",
        f"❌ <strong>CI failed</strong>: {esc(what)}{esc(where)}",
        url,
        quote=detail,
    )


def render_status(event: StatusEvent) -> Rendered | None:
    if event.state not in FAILED_STATES:
        return None
    branch = str(event.branches[0].get("name", "")) if event.branches else ""
    what = cut(event.context or "status")
    return _failed(event, what, _where(branch, event.sha), event.target_url, event.description)


def render_workflow_run(event: WorkflowRunEvent) -> Rendered | None:
    run = event.workflow_run
    if event.action != "completed" or run.conclusion not in FAILED_CONCLUSIONS:
        return None
    number = f" #{run.run_number}" if run.run_number else ""
    what = f"{cut(run.name or 'workflow')}{number}"
    return _failed(
        event, what, _where(run.head_branch, run.head_sha), run.html_url, run.display_title
    )


def render_workflow_job(event: WorkflowJobEvent) -> Rendered | None:
    job = event.workflow_job
    if event.action != "completed" or job.conclusion not in FAILED_CONCLUSIONS:
        return None
    what = f"job {cut(job.name or 'job')}"
    return _failed(event, what, _where(job.head_branch, job.head_sha), job.html_url)
