"""Compliance reports (real PostgreSQL): the OpenReports ``Report`` shape in JSON and YAML (checked against a schema
written from openreports.io/v1alpha1's Go types), CSV whose formula-like cells stay text, the portal's downloads
and the API's, each holding only what the caller may read."""

from __future__ import annotations

import csv
import io

import jsonschema
import pytest
import yaml

from apps.clusters.models import Workload
from apps.compliance import evaluation
from apps.compliance.models import Binding, Policy, Result
from tests.support.clients import error_fields, forced_login, with_binding
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

API, PORTAL = "/api/v1/compliance/reports/", "/compliance/reports/"
PRIVILEGED = {
    "metadata": {"labels": {"app": "shop"}},
    "spec": {
        "containers": [{"name": "app", "image": "registry.local/shop:1.0", "securityContext": {"privileged": True}}]
    },
}
FORMULAS = ('=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1:A2)")

# openreports.io/v1alpha1 (github.com/openreports/reports-api, apis/openreports.io/v1alpha1/report_types.go):
# the fields a Report and its results may carry, their enums, nothing else.
OBJECT_REFERENCE = {
    "type": "object",
    "properties": {
        k: {"type": "string"} for k in ("apiVersion", "kind", "name", "namespace", "uid", "resourceVersion")
    },
    "additionalProperties": False,
}
RESULT = {
    "type": "object",
    "required": ["policy"],
    "properties": {
        "source": {"type": "string"},
        "policy": {"type": "string", "minLength": 1},
        "rule": {"type": "string"},
        "category": {"type": "string"},
        "severity": {"enum": ["critical", "high", "medium", "low", "info"]},
        "timestamp": {
            "type": "object",
            "required": ["seconds", "nanos"],
            "properties": {"seconds": {"type": "integer"}, "nanos": {"type": "integer", "minimum": 0}},
            "additionalProperties": False,
        },
        "result": {"enum": ["pass", "fail", "warn", "error", "skip"]},
        "scored": {"type": "boolean"},
        "resources": {"type": "array", "items": OBJECT_REFERENCE},
        "resourceSelector": {"type": "object"},
        "message": {"type": "string"},
        "properties": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
REPORT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "summary", "results"],
    "properties": {
        "apiVersion": {"const": "openreports.io/v1alpha1"},
        "kind": {"const": "Report"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}},
        },
        "source": {"type": "string"},
        "scope": OBJECT_REFERENCE,
        "scopeSelector": {"type": "object"},
        "configuration": {"type": "object"},
        "summary": {
            "type": "object",
            "properties": {k: {"type": "integer", "minimum": 0} for k in ("pass", "fail", "warn", "error", "skip")},
            "additionalProperties": False,
        },
        "results": {"type": "array", "items": RESULT},
    },
    "additionalProperties": False,
}
REPORT_LIST = {
    "type": "object",
    "required": ["apiVersion", "kind", "items"],
    "properties": {
        "apiVersion": {"const": "openreports.io/v1alpha1"},
        "kind": {"const": "ReportList"},
        "metadata": {"type": "object"},
        "items": {"type": "array", "items": REPORT},
    },
    "additionalProperties": False,
}


@pytest.fixture
def estate():
    """Shop (namespace shop) and blog (namespace blog) on cluster prod, both privileged, against the baseline and
    a custom policy whose failure messages look like spreadsheet formulas."""
    cluster = cluster_row("prod")
    shop = application_row(cluster, "shop", "shop", [])
    blog = application_row(cluster, "blog", "blog", [])
    Workload.objects.update(pod_template=PRIVILEGED, desired_replicas=1)
    Binding.objects.create(policy=Policy.objects.get(key="pss-baseline"))
    custom = Policy.objects.create(
        key="formulas",
        name="Formula-looking messages",
        kind="cel",
        severity="low",
        validations=[{"expression": "false", "message": message} for message in FORMULAS],
        match={"kinds": ["Deployment"]},
    )
    Binding.objects.create(policy=custom)
    evaluation.scan()
    return {"cluster": cluster, "shop": shop, "blog": blog}


def namespaces_in(report: dict) -> set[str]:
    return {item["metadata"]["namespace"] for item in report["items"]}


def test_the_json_report_has_the_openreports_shape_and_counts(estate, viewer_persona):
    report = forced_login(viewer_persona.user).get(API).json()
    jsonschema.validate(report, REPORT_LIST)
    assert namespaces_in(report) == {"shop", "blog"}
    shop = next(item for item in report["items"] if item["metadata"]["namespace"] == "shop")
    assert shop["scope"] == {"apiVersion": "v1", "kind": "Namespace", "name": "shop"}
    assert shop["source"] == "icc" and shop["metadata"]["annotations"]["icc.io/cluster"] == "prod"
    results = shop["results"]
    assert len(results) == Result.objects.filter(namespace="shop").count()
    counts = {key: sum(1 for r in results if r["result"] == key) for key in shop["summary"]}
    assert shop["summary"] == counts and shop["summary"]["fail"] == 1 + len(FORMULAS)
    privileged = next(r for r in results if r["rule"] == "pss.baseline.privileged")
    assert privileged["policy"] == "pss-baseline" and privileged["severity"] == "critical"
    assert privileged["result"] == "fail" and privileged["scored"] is True and privileged["source"] == "icc"
    assert privileged["resources"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "shop-w",
            "namespace": "shop",
            "uid": "u-shop",
        }
    ]
    assert privileged["category"], "built-in checks name their category"
    row = Result.objects.get(workload__name="shop-w", check_id="pss.baseline.privileged")
    assert privileged["timestamp"]["seconds"] == int(row.since.timestamp())
    assert privileged["properties"]["icc-status"] == "fail" and privileged["properties"]["application"] == "shop"


def test_an_excepted_failure_is_reported_as_an_unscored_skip(estate, viewer_persona):
    Result.objects.filter(workload__name="shop-w", check_id="pss.baseline.privileged").update(status="excepted")
    report = forced_login(viewer_persona.user).get(API, {"namespace": "shop"}).json()
    entry = next(r for r in report["items"][0]["results"] if r["rule"] == "pss.baseline.privileged")
    assert entry["result"] == "skip" and entry["scored"] is False
    assert entry["properties"]["icc-status"] == "excepted"


def test_the_yaml_report_is_the_same_report(estate, viewer_persona):
    client = forced_login(viewer_persona.user)
    as_json = client.get(API, {"namespace": "blog"}).json()
    response = client.get(API, {"namespace": "blog", "format": "yaml"})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/yaml")
    as_yaml = yaml.safe_load(response.content)
    jsonschema.validate(as_yaml, REPORT_LIST)
    for item in (*as_json["items"], *as_yaml["items"]):
        item["metadata"].pop("creationTimestamp")
    assert as_yaml == as_json

    portal = client.get(PORTAL, {"format": "yaml", "namespace": "blog"})
    assert portal.status_code == 200 and "attachment" in portal["Content-Disposition"]
    jsonschema.validate(yaml.safe_load(portal.content), REPORT_LIST)


def test_csv_cells_that_look_like_formulas_stay_text(estate, viewer_persona):
    client = forced_login(viewer_persona.user)
    for response in (client.get(API, {"format": "csv"}), client.get(PORTAL, {"format": "csv"})):
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert len(rows) == Result.objects.count()
        messages = {row["message"] for row in rows if row["policy"] == "formulas"}
        assert messages == {f"'{formula}" for formula in FORMULAS}, messages
        for row in rows:
            for value in row.values():
                assert not value.startswith(("=", "+", "-", "@")), row
        assert {row["workload"] for row in rows} == {"shop-w", "blog-w"}


def test_reports_hold_only_what_the_caller_may_read(estate, make_user, outsider_persona, client):
    """The attack: a user bound to the shop application asks for everything, for the blog namespace by filter and
    for another status; an outsider and an anonymous caller ask too."""
    shop_viewer = with_binding(make_user("shop-viewer"), "viewer", estate["cluster"], application="shop")
    shop = forced_login(shop_viewer.user)
    assert namespaces_in(shop.get(API).json()) == {"shop"}
    assert shop.get(API, {"namespace": "blog"}).json()["items"] == []
    assert shop.get(API, {"application": estate["blog"].pk}).json()["items"] == []
    failing = shop.get(API, {"status": "fail"}).json()
    assert {r["result"] for item in failing["items"] for r in item["results"]} == {"fail"}
    csv_rows = list(csv.DictReader(io.StringIO(b"".join(shop.get(API, {"format": "csv"}).streaming_content).decode())))
    assert {row["workload"] for row in csv_rows} == {"shop-w"}
    portal = yaml.safe_load(shop.get(PORTAL, {"format": "yaml", "cluster": estate["cluster"].pk}).content)
    assert namespaces_in(portal) == {"shop"}

    assert forced_login(outsider_persona.user).get(API).json()["items"] == []
    assert client.get(API).status_code in (401, 403)
    assert client.get(PORTAL).status_code == 302, "the portal sends anonymous callers to log in"


def test_a_bad_report_parameter_is_a_400_naming_it(estate, viewer_persona):
    client = forced_login(viewer_persona.user)
    for parameter, value in (("format", "xml"), ("status", "broken"), ("cluster", "prod")):
        response = client.get(API, {parameter: value})
        assert response.status_code == 400, (parameter, response.content)
        assert parameter in error_fields(response)
        portal = client.get(PORTAL, {parameter: value})
        assert portal.status_code == 400 and parameter in portal.content.decode()
