from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.users.api.bindings import RoleBindingViewSet
from apps.users.api.service_accounts import ServiceAccountViewSet
from apps.users.api.teams import TeamViewSet
from apps.users.api.tokens import ApiTokenViewSet
from apps.users.api.views import UserViewSet

router = SimpleRouter()
router.register("users", UserViewSet, basename="user")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("role-bindings", RoleBindingViewSet, basename="rolebinding")
router.register("service-accounts", ServiceAccountViewSet, basename="serviceaccount")
router.register("teams", TeamViewSet, basename="team")
urlpatterns = router.urls
