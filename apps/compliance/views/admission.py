"""The admission webhook's endpoint: machine-to-machine, no session, no CSRF; the path token authenticates."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.compliance import admission


@csrf_exempt
@require_POST
def review(request: HttpRequest, cluster_id: int, token: str) -> HttpResponse:
    """One AdmissionReview v1 from a cluster's API server; 403 for a wrong token, 400 for a malformed review."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > admission.MAX_BODY_BYTES:
        return JsonResponse({"error": f"the body is larger than {admission.MAX_BODY_BYTES} bytes"}, status=413)
    try:
        answer = admission.review(cluster_id, token, request.body)
    except admission.BadToken as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    except admission.BadReview as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(answer)
