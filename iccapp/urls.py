"""URL map: portal, API v1 (with its OpenAPI schema and docs), admin, probes and metrics."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.users.forms import ThrottledAdminAuthenticationForm, ThrottledPasswordChangeForm
from apps.users.oidc import LoginView

admin.site.site_header = "ICC administration"
admin.site.site_title = "ICC admin"
admin.site.index_title = "Intelligent Command Center"
admin.site.login_form = ThrottledAdminAuthenticationForm  # the same login throttle as the portal's

api_v1: list[URLPattern | URLResolver] = [
    path("", include("apps.users.api.urls")),
    path("", include("apps.audit.api.urls")),
    path("", include("apps.clusters.api.urls")),
    path("scaler/", include("apps.scaler.api.urls")),
    path("cron/", include("apps.cron.api.urls")),
    path("compliance/", include("apps.compliance.api.urls")),
    path("traffic/", include("apps.traffic.api.urls")),
    path("notifications/", include("apps.notifications.api.urls")),
    path("calendar/", include("apps.calendar.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="v1:schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="v1:schema"), name="redoc"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path(
        "accounts/login/",
        LoginView.as_view(),  # Django's, plus single sign-on and OIDC_ONLY (apps.users.oidc)
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(form_class=ThrottledPasswordChangeForm, success_url="/"),
        name="password_change",
    ),
    path("audit/", include("apps.audit.urls")),
    path("clusters/", include("apps.clusters.urls")),
    path("scaler/", include("apps.scaler.urls")),
    path("cron/", include("apps.cron.urls")),
    path("calendar/", include("apps.calendar.urls")),
    path("compliance/", include("apps.compliance.urls")),
    path("traffic/", include("apps.traffic.urls")),
    path("notifications/", include("apps.notifications.urls")),
    path("users/", include("apps.users.urls")),
    # Addresses before each app's pages took its label as their prefix: bookmarks keep working.
    *(
        re_path(rf"^{old}/(?P<rest>.*)$", RedirectView.as_view(url=f"/{new}/%(rest)s", query_string=True))
        for old, new in (("scaling", "scaler"), ("settings", "users"), ("applications", "clusters/applications"))
    ),
    path("", include("apps.core.urls")),
]

# --- OpenID Connect: the code flow under /oidc/; logout also ends the provider's session (apps.users.oidc).
if settings.OIDC_ENABLED:
    from mozilla_django_oidc.views import OIDCLogoutView

    urlpatterns[:0] = [
        path("accounts/logout/", OIDCLogoutView.as_view(), name="logout"),
        path("oidc/", include("mozilla_django_oidc.urls")),
    ]
# --- end OpenID Connect

handler403 = "apps.core.views.error_403"
handler404 = "apps.core.views.error_404"
handler500 = "apps.core.views.error_500"
