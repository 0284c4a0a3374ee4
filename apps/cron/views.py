"""Portal pages of cron: the jobs list, a job's page (editor, live preview, live run timeline, actions), one
run's details and ICC's own periodic work (system jobs).

Views are thin: selectors read (restricted to the viewer), services write (checked, audited), forms check shapes.
Hidden jobs answer 404; visible ones the viewer may not change answer 403 (recorded as denied), and the buttons
they may not use are not shown. A signing secret is shown once, in the answer of the create or rotate request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.audit.events import history_of
from apps.core import portal
from apps.core.access import Action, can, is_platform_superuser, scopes_for
from apps.core.errors import DomainError, ForbiddenError
from apps.cron import events, schedule, selectors
from apps.cron.forms import DeleteForm, JobFilterForm, JobForm, PreviewForm, ReasonForm, job_initial
from apps.cron.models import Job, Run
from apps.cron.services import jobs as job_services
from apps.cron.services import runs as run_services

JOBS_PAGE = 50
RUNS_PAGE = 20
PREVIEW_COUNT = 10


def _job(request: HttpRequest, pk: int) -> Job:
    found = selectors.job(request.user, pk)
    if found is None:
        raise Http404("no such job")
    return found


def _run(request: HttpRequest, job: Job, run_id: int) -> Run:
    found = selectors.run(request.user, job, run_id)
    if found is None:
        raise Http404("no such run")
    return found


def _may_create(user: Any) -> bool:
    """Rule: the editor is offered to whoever may configure somewhere (the service checks the job's scope)."""
    return is_platform_superuser(user) or bool(scopes_for(user, Action.CONFIGURE))


def _refused(request: HttpRequest, exc: DomainError, what: str, target: Any) -> None:
    """A service's refusal of the caller becomes the portal's audited 403."""
    if isinstance(exc, ForbiddenError):
        portal.deny(request, what, target)


# --- the jobs list --------------------------------------------------------------------------------------------


def _jobs_context(request: HttpRequest) -> dict[str, Any]:
    form = JobFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    rows = selectors.jobs(
        request.user,
        search=filters.get("q", ""),
        state=filters.get("state", ""),
        target_kind=filters.get("target_kind", ""),
        application=filters.get("application"),
        suspended=filters.get("suspended"),
    )
    page = portal.paginate(rows, filters.get("page"), JOBS_PAGE)
    page.object_list = selectors.decorate(request.user, list(page.object_list))
    return {"form": form, "filters": filters, "page": page, "query": portal.query_string(filters)}


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    context = _jobs_context(request)
    application = context["filters"].get("application")
    context.update(
        applications=selectors.applications(request.user),
        filtered_application=selectors.applications(request.user).filter(pk=application).first()
        if application
        else None,
        may_create=_may_create(request.user),
        live_topics=events.JOBS,
    )
    return render(request, "cron/jobs.html", context)


job_table = portal.table_view("cron/_jobs_table.html", _jobs_context)


# --- one job ------------------------------------------------------------------------------------------------------


def _runs_context(request: HttpRequest, job: Job) -> dict[str, Any]:
    page = portal.paginate(selectors.runs(request.user, job), request.GET.get("page"), RUNS_PAGE)
    return {"job": job, "runs": page}


def _editor(request: HttpRequest, job: Job | None, data: Any = None) -> JobForm:
    user = request.user
    read_only = job is not None and (job.declared or not can(user, Action.CONFIGURE, job))
    initial = job_initial(job) if job is not None else {}
    if job is None and request.GET.get("application", "").isdigit():
        initial["application"] = int(request.GET["application"])
    return JobForm(
        data,
        initial=initial,
        applications=selectors.applications(user),
        clusters=selectors.clusters(user),
        job=job,
        read_only=read_only,
    )


def _page(
    request: HttpRequest,
    job: Job | None,
    *,
    form: JobForm | None = None,
    status: int = 200,
    secret: str = "",
    delete_form: DeleteForm | None = None,
) -> HttpResponse:
    user = request.user
    form = form or _editor(request, job)
    context: dict[str, Any] = {
        "job": job,
        "form": form,
        "secret": secret,
        "delete_form": delete_form or DeleteForm(),
        "reason_form": ReasonForm(),
        "preview": [],
        "preview_error": "",
    }
    expression, tz = (form["schedule"].value() or "", form["timezone"].value() or "UTC")
    context.update(_preview_context(str(expression), str(tz)))
    if job is not None:
        context.update(
            _runs_context(request, job),
            schedule_words=schedule.explain(job.schedule),
            next_local=selectors.local_text(selectors.next_run_local(job)),
            may_configure=can(user, Action.CONFIGURE, job),
            may_edit=can(user, Action.CONFIGURE, job) and not job.declared,
            may_act=can(user, Action.ACT, job),
            live_topics=portal.live(events.job(job.pk), history_of(job)),
        )
    else:
        context.update(may_configure=True, may_edit=True, may_act=False)
    return render(request, "cron/job.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request: HttpRequest) -> HttpResponse:
    if not _may_create(request.user):
        portal.deny(request, "cron.job.create", None)
    if request.method == "GET":
        return _page(request, None)
    form = _editor(request, None, request.POST)
    if not form.is_valid():
        return _page(request, None, form=form, status=400)
    try:
        job, secret = job_services.job_create(by=request.user, **form.values())
    except DomainError as exc:
        _refused(request, exc, "cron.job.create", None)
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _page(request, None, form=form, status=exc.status)
    messages.success(request, f"Job {job.name} created.")
    return _page(request, _job(request, job.pk), secret=secret)


@login_required
@require_http_methods(["GET", "POST"])
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    if request.method == "GET":
        return _page(request, job)
    portal.require(request, Action.CONFIGURE, job, "cron.job.update")
    form = _editor(request, job, request.POST)
    if job.declared:
        messages.error(request, "This job is declared by its application: change the declaration instead.")
        return _page(request, job, status=409)
    if not form.is_valid():
        return _page(request, job, form=form, status=400)
    try:
        saved = job_services.job_update(job=job, by=request.user, **form.values())
    except DomainError as exc:
        _refused(request, exc, "cron.job.update", job)
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _page(request, job, form=form, status=exc.status)
    messages.success(request, f"Job {saved.name} saved (version {saved.version}).")
    return redirect("cron:job", pk=saved.pk)


@login_required
@require_GET
def runs_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    return render(request, "cron/_runs.html", _runs_context(request, job))


@login_required
@require_GET
def run_detail(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    job = _job(request, pk)
    run = _run(request, job, run_id)
    pods = selectors.run_pods(request.user, job, run)
    context = {
        "job": job,
        "run": run,
        "attempts": selectors.attempts(request.user, run),
        "pods": [(pod, can(request.user, Action.ACT, pod) and pod.application_id is not None) for pod in pods],
        "may_act": can(request.user, Action.ACT, job),
        "reason_form": ReasonForm(),
    }
    return render(request, "cron/run.html", context)


def _preview_context(expression: str, tz: str, after: datetime | None = None) -> dict[str, Any]:
    if not expression.strip():
        return {"preview": [], "preview_error": "", "preview_field": ""}
    try:
        schedule.validate(expression, tz or "UTC")
        slots = schedule.preview(expression, tz or "UTC", count=PREVIEW_COUNT, after=after)
    except DomainError as exc:
        return {"preview": [], "preview_error": exc.message, "preview_field": exc.field or ""}
    return {"preview": slots, "preview_error": "", "preview_field": "", "preview_words": schedule.explain(expression)}


@login_required
@require_GET
def preview(request: HttpRequest) -> HttpResponse:
    """The next runs of the expression and zone being typed (an HTML fragment for static/cron/cron.js); ``after``
    (ISO 8601) previews from another moment than now."""
    form = PreviewForm(request.GET)
    if not form.is_valid():
        context = {
            "preview": [],
            "preview_error": "; ".join(str(e) for e in form.errors.get("after", [])),
            "preview_field": "after",
        }
        return render(request, "cron/_preview.html", context, status=400)
    data = form.cleaned_data
    context = _preview_context(str(data.get("schedule") or ""), str(data.get("timezone") or "UTC"), data.get("after"))
    return render(request, "cron/_preview.html", context, status=400 if context["preview_error"] else 200)


# --- actions ------------------------------------------------------------------------------------------------------


@login_required
@require_POST
def job_run_now(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    portal.require(request, Action.ACT, job, "cron.job.run")
    try:
        run = run_services.job_run_now(job=job, by=request.user)
    except DomainError as exc:
        _refused(request, exc, "cron.job.run", job)
        messages.error(request, exc.message)
        return redirect("cron:job", pk=job.pk)
    messages.success(request, f"Run {run.pk} of {job.name} asked for.")
    return redirect("cron:job", pk=job.pk)


def _set_suspended(request: HttpRequest, pk: int, suspended: bool) -> HttpResponse:
    job = _job(request, pk)
    portal.require(request, Action.ACT, job, "cron.job.suspend" if suspended else "cron.job.resume")
    form = ReasonForm(request.POST)
    reason = form.cleaned_data.get("reason", "") if form.is_valid() else ""
    job_services.job_set_suspended(job=job, suspended=suspended, reason=reason, by=request.user)
    messages.success(request, f"Job {job.name} {'suspended' if suspended else 'resumed'}.")
    return redirect("cron:job", pk=job.pk)


@login_required
@require_POST
def job_suspend(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_suspended(request, pk, True)


@login_required
@require_POST
def job_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_suspended(request, pk, False)


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    job = _job(request, pk)
    run = _run(request, job, run_id)
    portal.require(request, Action.ACT, job, "cron.run.cancel")
    form = ReasonForm(request.POST)
    reason = form.cleaned_data.get("reason", "") if form.is_valid() else ""
    try:
        run_services.run_cancel(run=run, by=request.user, reason=reason)
        messages.success(request, f"Run {run.pk} cancelled.")
    except DomainError as exc:
        _refused(request, exc, "cron.run.cancel", job)
        messages.error(request, exc.message)
    return redirect("cron:run", pk=job.pk, run_id=run.pk)


@login_required
@require_POST
def job_delete(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    portal.require(request, Action.CONFIGURE, job, "cron.job.delete")
    form = DeleteForm(request.POST)
    confirm = form.cleaned_data["confirm"] if form.is_valid() else ""
    try:
        job_services.job_delete(job=job, confirm=confirm, by=request.user)
    except DomainError as exc:
        _refused(request, exc, "cron.job.delete", job)
        form.add_error("confirm" if exc.field == "confirm" else None, exc.message)
        return _page(request, job, delete_form=form, status=exc.status)
    messages.success(request, f"Job {job.name} deleted with its runs.")
    return redirect("cron:jobs")


@login_required
@require_POST
def job_rotate_secret(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    portal.require(request, Action.CONFIGURE, job, "cron.job.rotate_secret")
    secret = job_services.job_rotate_secret(job=job, by=request.user)
    return _page(request, job, secret=secret)


# --- ICC's own periodic work ----------------------------------------------------------------------------------------


@login_required
@require_GET
def system_jobs(request: HttpRequest) -> HttpResponse:
    return render(request, "cron/system.html", {"system_jobs": selectors.system_jobs(request.user)})
