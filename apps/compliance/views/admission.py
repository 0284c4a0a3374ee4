"""The admission webhook's endpoint: machine-to-machine, no session, no CSRF; the path token authenticates."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.compliance import admission, notify, tasks


@csrf_exempt
@require_POST
def review(request: HttpRequest, cluster_id: int, token: str) -> HttpResponse:
    """One AdmissionReview v1 from a cluster's API server; 403 for a wrong token, 400 for a malformed review."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > admission.MAX_BODY_BYTES:
        return JsonResponse({"error": f"the body is larger than {admission.MAX_BODY_BYTES} bytes"}, status=413)
    denials: list[notify.Denial] = []
    try:
        answer = admission.review(cluster_id, token, request.body, denials)
    except admission.BadToken as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    except admission.BadReview as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if denials:
        return _AnsweredThenHandedOff(answer, denials)
    return JsonResponse(answer)


class _AnsweredThenHandedOff(JsonResponse):
    """The answer to a denial: the server closes a response once it is sent, and only then is the denial handed
    off (:func:`apps.compliance.tasks.admission_denied_later`), so the API server never waits on it."""

    def __init__(self, answer: dict[str, Any], denials: list[notify.Denial]) -> None:
        super().__init__(answer)
        self._denials = denials

    def close(self) -> None:
        try:
            super().close()
        finally:
            tasks.admission_denied_later(self._denials)
