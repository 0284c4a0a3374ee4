"""Custom CEL policies: compile errors with their position, verdicts, messages, parameters, limits. No database."""

from __future__ import annotations

from typing import Any

import pytest

from apps.compliance.cel import (
    ITERATION_BUDGET,
    MAX_EXPRESSION_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_VALIDATIONS,
    CelCompileError,
    compile_policy,
    matches,
    request_for,
)
from apps.compliance.checks import Severity, Status
from apps.core.errors import DomainError

RUN_AS_NON_ROOT = "object.spec.template.spec.?securityContext.runAsNonRoot.orValue(false)"


def deployment(replicas: int = 2, pod: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}, **metadata},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "app", "image": "ghcr.io/acme/web:1.0"}], **(pod or {})}},
        },
    }


def statuses(results: list[Any]) -> list[str]:
    return [str(r.status) for r in results]


# ---------------------------------------------------------------- compiling


def test_a_syntax_error_names_the_validation_and_its_position() -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "true"}, {"expression": "object.spec.replicas >= "}])
    error = caught.value
    assert isinstance(error, DomainError)
    assert error.status == 400
    assert error.field == "validations[1].expression"
    assert (error.line, error.column) == (1, 25)
    assert error.message.startswith("1:25: Syntax error")


def test_the_position_counts_lines() -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "object.spec.replicas >= 2 &&\n  object.spec.paused == )"}])
    assert (caught.value.line, caught.value.column) == (2, 25)
    assert caught.value.message.startswith("2:25: ")


def test_an_undeclared_name_is_a_compile_error() -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "obj.spec.replicas >= 2"}])
    assert caught.value.message == "1:9: undeclared reference to 'obj.spec.replicas'"
    assert caught.value.line == 1


def test_a_validation_must_be_a_bool_and_a_message_expression_a_string() -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "'yes'"}])
    assert caught.value.field == "validations[0].expression"
    assert "must evaluate to bool, not string" in caught.value.message
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "true", "messageExpression": "1 + 2"}])
    assert caught.value.field == "validations[0].messageExpression"


def test_a_message_expression_compile_error_names_its_field() -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "true", "messageExpression": "'n=' + "}])
    assert caught.value.field == "validations[0].messageExpression"
    assert caught.value.column == 8


def test_every_validation_in_the_variables_kubernetes_offers_compiles() -> None:
    policy = compile_policy(
        [
            {"expression": "oldObject == null"},
            {"expression": "namespaceObject == null || namespaceObject.metadata.name == object.metadata.namespace"},
            {"expression": "request.operation == 'CREATE' && request.kind.kind == object.kind"},
            {"expression": "params == null || object.spec.replicas <= params.maxReplicas"},
        ]
    )
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    assert statuses(policy.evaluate(deployment(), namespace=namespace)) == ["pass"] * 4


# ---------------------------------------------------------------- verdicts


def test_replicas_policy_passes_and_fails() -> None:
    policy = compile_policy(
        [{"expression": "object.spec.replicas >= 2", "message": "run at least two replicas"}],
        name="ha",
        severity=Severity.HIGH,
    )
    [ok] = policy.evaluate(deployment(replicas=3))
    [bad] = policy.evaluate(deployment(replicas=1))
    assert ok.status == Status.PASS
    assert (bad.status, bad.message) == (Status.FAIL, "run at least two replicas")
    assert (bad.check_id, bad.policy, bad.severity) == ("ha.validations[0]", "ha", Severity.HIGH)


def test_a_failure_without_a_message_quotes_the_expression() -> None:
    [result] = compile_policy([{"expression": "object.spec.replicas >= 2"}]).evaluate(deployment(replicas=1))
    assert result.message == "failed expression: object.spec.replicas >= 2"


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ({"securityContext": {"runAsNonRoot": True}}, Status.PASS),
        ({"securityContext": {"runAsNonRoot": False}}, Status.FAIL),
        ({"securityContext": {}}, Status.FAIL),
        ({}, Status.FAIL),
    ],
)
def test_optional_field_syntax(pod: dict[str, Any], expected: Status) -> None:
    [result] = compile_policy([{"expression": RUN_AS_NON_ROOT}]).evaluate(deployment(pod=pod))
    assert result.status == expected


def test_message_expression_is_the_failure_message() -> None:
    policy = compile_policy(
        [
            {
                "expression": "object.spec.replicas >= 2",
                "message": "too few replicas",
                "messageExpression": "object.metadata.name + ' runs ' + string(object.spec.replicas) + ' replica(s)'",
            }
        ]
    )
    [result] = policy.evaluate(deployment(replicas=1))
    assert result.message == "web runs 1 replica(s)"


@pytest.mark.parametrize("message_expression", ["object.missing", "''", "'two\\nlines'"])
def test_a_message_expression_that_fails_or_is_blank_falls_back_to_message(message_expression: str) -> None:
    policy = compile_policy(
        [{"expression": "false", "message": "static message", "messageExpression": message_expression}]
    )
    [result] = policy.evaluate(deployment())
    assert (result.status, result.message) == (Status.FAIL, "static message")


def test_a_message_expression_result_is_bounded() -> None:
    policy = compile_policy([{"expression": "false", "messageExpression": "'abc' + object.metadata.name"}])
    long_name = "n" * 5000
    [result] = policy.evaluate(deployment(name=long_name))
    assert len(result.message) == MAX_MESSAGE_CHARS
    assert result.message.startswith("abcnnn")
    assert result.message.endswith("…")


def test_params_reach_the_expression() -> None:
    policy = compile_policy(
        [
            {
                "expression": "object.spec.replicas >= params.minReplicas",
                "messageExpression": "'at least ' + string(params.minReplicas) + ' replicas'",
            },
            {"expression": "object.metadata.labels.all(k, k in params.allowedLabels)"},
        ]
    )
    params = {"minReplicas": 3, "allowedLabels": ["app", "team"]}
    assert statuses(policy.evaluate(deployment(replicas=3), params=params)) == ["pass", "pass"]
    results = policy.evaluate(deployment(replicas=2, labels={"app": "web", "tier": "x"}), params=params)
    assert statuses(results) == ["fail", "fail"]
    assert results[0].message == "at least 3 replicas"


def test_composition_variables_are_seen_as_variables() -> None:
    policy = compile_policy(
        [{"expression": "variables.images.all(i, i.startsWith('ghcr.io/acme/'))"}],
        variables=[
            {"name": "containers", "expression": "object.spec.template.spec.containers"},
            {"name": "images", "expression": "variables.containers.map(c, c.image)"},
        ],
    )
    assert statuses(policy.evaluate(deployment())) == ["pass"]
    pod = {"containers": [{"name": "app", "image": "docker.io/nginx"}]}
    assert statuses(policy.evaluate(deployment(pod=pod))) == ["fail"]


def test_a_variable_that_fails_makes_the_validations_using_it_errors() -> None:
    policy = compile_policy(
        [{"expression": "variables.ctx.runAsNonRoot == true"}, {"expression": "true"}],
        variables=[{"name": "ctx", "expression": "object.spec.template.spec.securityContext"}],
    )
    results = policy.evaluate(deployment())
    assert statuses(results) == ["error", "pass"]
    assert results[0].message.startswith("validations[0]: variables.ctx: ")
    assert "securityContext" in results[0].message


# ---------------------------------------------------------------- runtime errors


def test_a_runtime_error_on_one_object_is_an_error_result_naming_the_validation() -> None:
    policy = compile_policy(
        [
            {"expression": "object.spec.replicas >= 2"},
            {"expression": "object.spec.template.spec.securityContext.runAsNonRoot == true"},
            {"expression": RUN_AS_NON_ROOT},
        ]
    )
    results = policy.evaluate(deployment())
    assert statuses(results) == ["pass", "error", "fail"]
    assert results[1].message.startswith("validations[1]: ")
    assert "securityContext" in results[1].message


@pytest.mark.parametrize(
    "expression",
    [
        "object.spec.replicas / 0 > 1",
        "params.minReplicas > 1",  # params is null
        "object.metadata.name",  # dyn at compile time, a string at run time
    ],
)
def test_other_runtime_failures_are_error_results(expression: str) -> None:
    [result] = compile_policy([{"expression": expression}]).evaluate(deployment())
    assert result.status == Status.ERROR
    assert result.message.startswith("validations[0]: ")


def test_the_iteration_budget_is_an_error_result() -> None:
    policy = compile_policy([{"expression": "object.items.all(a, object.items.all(b, a + b >= 0))"}])
    [small] = policy.evaluate({"kind": "List", "items": list(range(10))})
    [huge] = policy.evaluate({"kind": "List", "items": list(range(200))})
    assert small.status == Status.PASS
    assert huge.status == Status.ERROR
    assert str(ITERATION_BUDGET) in huge.message


# ---------------------------------------------------------------- limits


def test_limits_are_enforced_before_compiling() -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "true"}] * (MAX_VALIDATIONS + 1))
    assert caught.value.field == "validations"
    long = "true && " * (MAX_EXPRESSION_BYTES // 8) + "true"
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "true"}, {"expression": long}])
    assert caught.value.field == "validations[1].expression"
    assert str(MAX_EXPRESSION_BYTES) in caught.value.message
    assert len(compile_policy([{"expression": "true"}] * MAX_VALIDATIONS).validations) == MAX_VALIDATIONS


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "(" * 50 + "true" + ")" * 50}])
    assert "deeper than" in caught.value.message


@pytest.mark.parametrize(
    ("validations", "field"),
    [
        ([], "validations"),
        ({"expression": "true"}, "validations"),
        ([{"expression": ""}], "validations[0].expression"),
        ([{"message": "no expression"}], "validations[0].expression"),
        ([{"expression": "true", "mesage": "typo"}], "validations[0]"),
        ([{"expression": "true", "message": "two\nlines"}], "validations[0].message"),
    ],
)
def test_malformed_validations_name_their_field(validations: Any, field: str) -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy(validations)
    assert caught.value.field == field


def test_malformed_variables_name_their_field() -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "true"}], variables=[{"name": "a-b", "expression": "1"}])
    assert caught.value.field == "variables[0].name"
    with pytest.raises(CelCompileError) as caught:
        compile_policy([{"expression": "true"}], variables=[{"name": "a", "expression": "1 +"}])
    assert caught.value.field == "variables[0].expression"


# ---------------------------------------------------------------- match rules and request


def test_match_by_kind_namespace_and_labels() -> None:
    obj = deployment(labels={"app": "web", "tier": "front"})
    assert matches(obj)
    assert matches(obj, kinds=["Deployment", "StatefulSet"])
    assert matches(obj, kinds=["*"])
    assert not matches(obj, kinds=["DaemonSet"])
    assert matches(obj, namespaces=["shop"])
    assert matches(obj, namespaces=["sh*"])
    assert not matches(obj, namespaces=["kube-system"])
    assert matches(obj, labels={"app": "web"})
    assert not matches(obj, labels={"app": "web", "tier": "back"})
    assert matches(obj, kinds=["Deployment"], namespaces=["shop"], labels={"tier": "front"})


def test_a_cluster_scoped_object_never_matches_a_namespace_rule() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    assert matches(node, kinds=["Node"])
    assert not matches(node, namespaces=["*"])


def test_match_label_expressions() -> None:
    obj = deployment(labels={"app": "web", "tier": "front"})
    assert matches(obj, label_expressions=[{"key": "tier", "operator": "In", "values": ["front", "edge"]}])
    assert not matches(obj, label_expressions=[{"key": "tier", "operator": "NotIn", "values": ["front"]}])
    assert matches(obj, label_expressions=[{"key": "app", "operator": "Exists"}])
    assert matches(obj, label_expressions=[{"key": "legacy", "operator": "DoesNotExist"}])
    assert not matches(obj, label_expressions=[{"key": "legacy", "operator": "In", "values": ["x"]}])
    with pytest.raises(ValueError, match="operator"):
        matches(obj, label_expressions=[{"key": "app", "operator": "Like"}])


def test_request_for_an_observed_object() -> None:
    request = request_for(deployment())
    assert request["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert (request["name"], request["namespace"], request["operation"]) == ("web", "shop", "CREATE")
    assert request_for({"apiVersion": "v1", "kind": "Pod"})["kind"]["group"] == ""
