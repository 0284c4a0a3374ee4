"""A real OpenID Connect provider (npm ``oidc-provider``, tests/support/oidc_provider/provider.js) and an ICC
server using it (fixtures ``oidc_provider``, ``icc_oidc``), with the headless login dance (``sso_login``).

The provider runs on ``localhost`` and ICC on ``127.0.0.1`` (cookies ignore ports). Its accounts file is
read on every lookup, so a test changes someone's groups at the "identity provider" between two logins.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from tests.support.components import ROOT, free_port, require
from tests.support.http import wait_http_ok
from tests.support.server import RunningServer, running_icc, stop_process

OIDC_DIR = Path(__file__).resolve().parent / "oidc_provider"
CLIENT_ID = "icc-test"
CLIENT_SECRET = "icc-test-client-secret-0123456789"
GROUP_ROLES = "icc-admins=admin,icc-ops=operator"
ALICE = {
    "preferred_username": "alice",
    "email": "alice@example.test",
    "name": "Alice Liddell",
    "given_name": "Alice",
    "family_name": "Liddell",
    "groups": ["icc-admins", "icc-ops", "unmapped-group"],
}


@dataclass
class Provider:
    issuer: str
    accounts_file: Path
    icc_port: int
    process: subprocess.Popen[bytes]

    def set_account(self, login: str, claims: dict[str, Any]) -> None:
        accounts = json.loads(self.accounts_file.read_text())
        accounts[login] = claims
        self.accounts_file.write_text(json.dumps(accounts))


@pytest.fixture(scope="session")
def provider_installed() -> None:
    """node and npm present; ``npm ci --prefix tests/support/oidc_provider`` run when node_modules is missing."""
    require(bool(shutil.which("node") and shutil.which("npm")), "node and npm are not installed (apt nodejs npm)")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").exists():
        subprocess.run(
            ["npm", "ci", "--prefix", str(OIDC_DIR), "--no-audit", "--no-fund"], check=True, timeout=600, cwd=ROOT
        )


@pytest.fixture
def oidc_provider(provider_installed: None, tmp_path: Path) -> Iterator[Provider]:
    port, icc_port = free_port(), free_port()
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps({"alice": ALICE}))
    config = {
        "port": port,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"http://127.0.0.1:{icc_port}/oidc/callback/"],
        "post_logout_redirect_uris": [f"http://127.0.0.1:{icc_port}/accounts/login/"],
        "accounts_file": str(accounts_file),
    }
    config_file = tmp_path / "provider.json"
    config_file.write_text(json.dumps(config))
    log_path = tmp_path / "provider.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["node", str(OIDC_DIR / "provider.js"), str(config_file)], cwd=OIDC_DIR, stdout=log, stderr=log
        )
    issuer = f"http://localhost:{port}"
    try:
        try:
            wait_http_ok(
                f"{issuer}/.well-known/openid-configuration", process, what="oidc-provider", timeout=30, interval=0.2
            )
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()}") from None
        yield Provider(issuer, accounts_file, icc_port, process)
    finally:
        stop_process(process)


def oidc_env(issuer: str) -> dict[str, str]:
    return {
        "OIDC_ISSUER": issuer,
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_GROUP_ROLES": GROUP_ROLES,
    }


@pytest.fixture
def icc_oidc(transactional_db, tmp_path, collected_static, oidc_provider) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    with running_icc(tmp_path, collected_static, oidc_provider.icc_port, **oidc_env(oidc_provider.issuer)) as server:
        yield server


def form_of(html: str) -> tuple[str, dict[str, str]]:
    """The first form's action and its named inputs' values."""
    form = re.search(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", html, re.S)
    assert form, html
    fields = {}
    for tag in re.findall(r"<input[^>]*>", form[2]):
        name, value = re.search(r'name="([^"]*)"', tag), re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name[1]] = unescape(value[1]) if value else ""
    return unescape(form[1]), fields


def sso_login(server: RunningServer, login: str) -> requests.Session:
    """The whole redirect dance, headless: ICC -> provider's login form -> (consent) -> ICC callback."""
    session = requests.Session()
    response = session.get(f"{server.url}/oidc/authenticate/", timeout=10)
    assert "/interaction/" in response.url, response.text
    action, fields = form_of(response.text)
    response = session.post(
        urljoin(response.url, action), data={**fields, "login": login, "password": "anything"}, timeout=10
    )
    if "/interaction/" in response.url:  # a consent prompt, should the provider ask
        action, fields = form_of(response.text)
        response = session.post(urljoin(response.url, action), data=fields, timeout=10)
    assert response.url.startswith(server.url), response.url
    assert "sso=failed" not in response.url, server.log()
    assert "sessionid" in session.cookies.get_dict(domain="127.0.0.1") or session.cookies.get("sessionid")
    return session
