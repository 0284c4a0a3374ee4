"""Portal URLs of the users app (the Settings pages), under /users/ (namespace ``users``)."""

from __future__ import annotations

from django.urls import path

from apps.users import views

app_name = "users"
urlpatterns = [
    path("", views.account, name="account"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke_view, name="token-revoke"),
    path("bindings/", views.bindings, name="bindings"),
    path("bindings/<int:pk>/delete/", views.binding_delete_view, name="binding-delete"),
    path("people/", views.people, name="people"),
]
