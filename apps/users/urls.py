from __future__ import annotations

from django.urls import path

from apps.users import views

urlpatterns = [
    path("", views.account, name="settings"),
    path("tokens/", views.tokens, name="settings-tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke_view, name="settings-token-revoke"),
    path("bindings/", views.bindings, name="settings-bindings"),
    path("bindings/<int:pk>/delete/", views.binding_delete_view, name="settings-binding-delete"),
    path("people/", views.people, name="settings-people"),
]
