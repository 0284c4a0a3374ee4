"""Custom compliance policies in CEL, as Kubernetes ValidatingAdmissionPolicy writes them: compile once, judge many.

Pure, no database: the policy editor compiles on save (errors carry line:column), and the watcher, the scan and the
admission webhook call :meth:`CompiledPolicy.evaluate`, which never raises. Evaluation uses Google's CEL C++ runtime
(PyPI ``cel-expr-python``) with the optional-field (``?.``, ``orValue``) and strings extensions.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_optional, ext_strings

from apps.compliance.checks.base import Result, Severity, Status
from apps.core.errors import DomainError

logger = logging.getLogger(__name__)

MAX_EXPRESSION_BYTES = 4096
MAX_VALIDATIONS = 20
MAX_VARIABLES = 20
MAX_MESSAGE_CHARS = 1024
# Enforced by the runtime itself, not configurable through the bindings: parser nesting and the total number of
# comprehension iterations (all, exists, map, filter) in one evaluation. Both are the CEL C++ defaults.
PARSER_RECURSION_LIMIT = 32
ITERATION_BUDGET = 10_000

# What a ValidatingAdmissionPolicy expression can see; every value is JSON, so every type is dyn.
CEL_VARIABLES = ("object", "oldObject", "params", "namespaceObject", "request", "variables")
VALIDATION_KEYS = frozenset({"expression", "message", "messageExpression", "reason"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_POSITION = re.compile(r"<input>:(\d+):(\d+): ([^\n]*)")
_STATUS_PREFIX = re.compile(r"^[A-Z_]+: (ERROR: )?")
_STATUS_SUFFIX = re.compile(r"\s*\[[A-Z_]+\]$")

_ENV = cel.NewEnv(
    variables=dict.fromkeys(CEL_VARIABLES, cel.Type.DYN),
    extensions=[ext_optional.ExtOptional(), ext_strings.ExtStrings()],
)


class CelCompileError(DomainError):
    """An expression that does not compile; ``field`` names it, ``line``/``column`` (1-based) locate the first error."""

    code = "cel_compile_error"

    def __init__(self, message: str, *, field: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message, field=field)
        self.line = line
        self.column = column


class CelRuntimeError(Exception):
    """One expression failed on one object (a missing field, a wrong type, the iteration budget)."""


@dataclass(frozen=True)
class CompiledValidation:
    index: int
    expression: str
    message: str
    message_expression: str
    program: Any = None
    message_program: Any = None

    @property
    def field(self) -> str:
        return f"validations[{self.index}]"


@dataclass(frozen=True)
class CompiledVariable:
    name: str
    expression: str
    program: Any = None


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy whose expressions all compiled; :meth:`evaluate` gives one result per validation, in order."""

    name: str
    severity: Severity
    validations: tuple[CompiledValidation, ...]
    variables: tuple[CompiledVariable, ...] = ()

    def evaluate(
        self,
        obj: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        namespace: Mapping[str, Any] | None = None,
        *,
        request: Mapping[str, Any] | None = None,
    ) -> list[Result]:
        """Pass when an expression is true, fail (with its message) when false, ``error`` when it cannot be judged.

        ``params`` is the binding's parameters, ``namespace`` the object's Namespace (``None`` for cluster-scoped
        objects), ``request`` defaults to :func:`request_for` ``(obj)``; ``oldObject`` is always null.
        """
        data: dict[str, Any] = {
            "object": obj,
            "oldObject": None,
            "params": params,
            "namespaceObject": namespace,
            "request": request if request is not None else request_for(obj),
        }
        try:
            variables, variable_errors = self._variables_evaluate(data)
            activation = _ENV.Activation({**data, "variables": variables})
        except Exception as exc:
            # Only a value CEL cannot hold gets here (the object is not JSON); judge nothing rather than crash.
            logger.warning("CEL policy %s could not take %s", self.name, _name(obj), exc_info=True)
            return [self._result(v, Status.ERROR, f"{v.field}: {_clean(str(exc))}") for v in self.validations]
        return [self._validation_evaluate(v, activation, variable_errors) for v in self.validations]

    def _variables_evaluate(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Each variable in order, seeing the ones before it; a failed one is left out and its error remembered."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for variable in self.variables:
            activation = _ENV.Activation({**data, "variables": values})
            try:
                values[variable.name] = _run(variable.program, activation).plain_value()
            except CelRuntimeError as exc:
                errors[variable.name] = str(exc)
        return values, errors

    def _validation_evaluate(
        self, validation: CompiledValidation, activation: Any, variable_errors: Mapping[str, str]
    ) -> Result:
        try:
            verdict = _run(validation.program, activation).value()
        except CelRuntimeError as exc:
            reason = str(exc)
            for name, error in variable_errors.items():
                if "not found" in reason and reason.endswith(f'"{name}"'):
                    reason = f"variables.{name}: {error}"
                    break
            return self._result(validation, Status.ERROR, f"{validation.field}: {reason}")
        if not isinstance(verdict, bool):
            message = f"{validation.field}: must evaluate to a bool, not {type(verdict).__name__}"
            return self._result(validation, Status.ERROR, message)
        if verdict:
            return self._result(validation, Status.PASS, "")
        return self._result(validation, Status.FAIL, _failure_message(validation, activation))

    def _result(self, validation: CompiledValidation, status: Status, message: str) -> Result:
        return Result(f"{self.name}.{validation.field}", self.name, self.severity, status, message)


def compile_policy(
    validations: Sequence[Mapping[str, Any]],
    *,
    variables: Sequence[Mapping[str, Any]] = (),
    name: str = "custom",
    severity: Severity = Severity.MEDIUM,
) -> CompiledPolicy:
    """Compile a ValidatingAdmissionPolicy's ``validations`` (and its ``variables``, seen as ``variables.<name>``).

    Raises :class:`CelCompileError` (a DomainError, so a 400) naming the field at fault, e.g.
    ``validations[1].expression``, with line:column of the first error; limits are checked before compiling.
    """
    if isinstance(validations, (str, bytes, Mapping)) or not isinstance(validations, Sequence):
        raise CelCompileError("validations must be a list", field="validations")
    if not validations:
        raise CelCompileError("a policy needs at least one validation", field="validations")
    if len(validations) > MAX_VALIDATIONS:
        raise CelCompileError(f"at most {MAX_VALIDATIONS} validations per policy", field="validations")
    if isinstance(variables, (str, bytes, Mapping)) or not isinstance(variables, Sequence):
        raise CelCompileError("variables must be a list", field="variables")
    if len(variables) > MAX_VARIABLES:
        raise CelCompileError(f"at most {MAX_VARIABLES} variables per policy", field="variables")
    return CompiledPolicy(
        name=name,
        severity=severity,
        validations=tuple(_validation_compile(i, v) for i, v in enumerate(validations)),
        variables=_variables_compile(variables),
    )


def _variables_compile(variables: Sequence[Mapping[str, Any]]) -> tuple[CompiledVariable, ...]:
    compiled: list[CompiledVariable] = []
    seen: set[str] = set()
    for index, variable in enumerate(variables):
        field = f"variables[{index}]"
        if not isinstance(variable, Mapping):
            raise CelCompileError("must be an object with name and expression", field=field)
        name = variable.get("name")
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise CelCompileError("must be a CEL identifier (letters, digits, _)", field=f"{field}.name")
        if name in seen:
            raise CelCompileError(f"variable {name!r} is declared twice", field=f"{field}.name")
        seen.add(name)
        expression = variable.get("expression")
        program = _compile(expression, field=f"{field}.expression")
        compiled.append(CompiledVariable(name, str(expression), program))
    return tuple(compiled)


def _validation_compile(index: int, validation: Mapping[str, Any]) -> CompiledValidation:
    field = f"validations[{index}]"
    if not isinstance(validation, Mapping):
        raise CelCompileError("must be an object with an expression", field=field)
    unknown = sorted(set(validation) - VALIDATION_KEYS)
    if unknown:
        raise CelCompileError(f"unknown key(s): {', '.join(unknown)}", field=field)
    expression = validation.get("expression")
    program = _compile(expression, field=f"{field}.expression", result=cel.Type.BOOL)
    message = validation.get("message") or ""
    if not isinstance(message, str) or "\n" in message or len(message) > MAX_MESSAGE_CHARS:
        raise CelCompileError(f"must be one line of at most {MAX_MESSAGE_CHARS} characters", field=f"{field}.message")
    message_expression = validation.get("messageExpression") or ""
    message_program = None
    if message_expression:
        message_program = _compile(message_expression, field=f"{field}.messageExpression", result=cel.Type.STRING)
    return CompiledValidation(index, str(expression), message, str(message_expression), program, message_program)


def _compile(expression: Any, *, field: str, result: Any = None) -> Any:
    """One expression compiled and type-checked; ``result`` is the type it must have (dyn is accepted too)."""
    if not isinstance(expression, str) or not expression.strip():
        raise CelCompileError("must be a non-empty string", field=field)
    if len(expression.encode()) > MAX_EXPRESSION_BYTES:
        raise CelCompileError(f"is longer than {MAX_EXPRESSION_BYTES} bytes", field=field)
    try:
        program = _ENV.compile(expression)
    except RuntimeError as exc:
        raise _compile_error(str(exc), field) from None
    if result is not None:
        returns = program.return_type()
        if returns not in (result, cel.Type.DYN):
            raise CelCompileError(
                f"must evaluate to {result.name().lower()}, not {returns.name().lower()}", field=field
            )
    return program


def _compile_error(raw: str, field: str) -> CelCompileError:
    """The library's status text turned into ``line:column: message`` for each error it reports."""
    errors = _POSITION.findall(raw)
    if not errors:
        text = _clean(raw)
        if "recursion limit" in text:
            text = f"nests deeper than {PARSER_RECURSION_LIMIT} levels"
        return CelCompileError(text, field=field)
    line, column = int(errors[0][0]), int(errors[0][1])
    message = "; ".join(f"{ln}:{col}: {_clean(text)}" for ln, col, text in errors)
    return CelCompileError(message, field=field, line=line, column=column)


def _run(program: Any, activation: Any) -> Any:
    """Evaluate, turning both ways the runtime reports failure (an exception, an error value) into one exception."""
    try:
        value = program.eval(activation)
    except Exception as exc:
        text = _clean(str(exc))
        if "Iteration budget" in text:
            text = f"more than {ITERATION_BUDGET} comprehension iterations"
        raise CelRuntimeError(text) from None
    if value.type() == cel.Type.ERROR:
        raise CelRuntimeError(_clean(str(value.value())))
    return value


def _failure_message(validation: CompiledValidation, activation: Any) -> str:
    """messageExpression's string when it gives one line of text, else ``message``, as Kubernetes falls back."""
    if validation.message_program is not None:
        try:
            text = _run(validation.message_program, activation).value()
        except CelRuntimeError as exc:
            logger.info("%s.messageExpression failed: %s", validation.field, exc)
            text = None
        if isinstance(text, str) and text.strip() and "\n" not in text:
            return _bounded(text.strip())
    return validation.message or _bounded(f"failed expression: {validation.expression}")


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _clean(text: str) -> str:
    """``INVALID_ARGUMENT: ERROR: <input>:1:2: msg\\n | src\\n | ^ [INVALID_ARGUMENT]`` → ``msg``-ish, one line."""
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    first = first.replace(" (in container '')", "")
    return _STATUS_SUFFIX.sub("", _STATUS_PREFIX.sub("", first)).strip()


def request_for(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A minimal admission ``request`` for an object evaluated outside admission (a scan, the watcher, the editor)."""
    api_version = str(obj.get("apiVersion") or "")
    group, _, version = api_version.rpartition("/")
    metadata = _mapping(obj.get("metadata"))
    return {
        "kind": {"group": group, "version": version, "kind": str(obj.get("kind") or "")},
        "name": str(metadata.get("name") or ""),
        "namespace": str(metadata.get("namespace") or ""),
        "operation": "CREATE",
        "userInfo": {"username": "", "groups": []},
        "dryRun": False,
    }


def matches(
    obj: Mapping[str, Any],
    kinds: Sequence[str] | None = None,
    namespaces: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    *,
    label_expressions: Sequence[Mapping[str, Any]] = (),
) -> bool:
    """Whether a policy's match rules select ``obj``; an empty rule selects everything.

    ``kinds`` are kind names (``Deployment``) or ``*``; ``namespaces`` are names or globs (``team-*``) and never
    select a cluster-scoped object; ``labels`` must all be equal; ``label_expressions`` are a LabelSelector's
    matchExpressions (In, NotIn, Exists, DoesNotExist).
    """
    metadata = _mapping(obj.get("metadata"))
    if kinds and "*" not in kinds and obj.get("kind") not in kinds:
        return False
    if namespaces:
        namespace = metadata.get("namespace")
        if not namespace or not any(fnmatch.fnmatchcase(namespace, pattern) for pattern in namespaces):
            return False
    object_labels = _mapping(metadata.get("labels"))
    if labels and any(object_labels.get(key) != value for key, value in labels.items()):
        return False
    return all(_label_expression_matches(object_labels, e) for e in label_expressions)


def _label_expression_matches(labels: Mapping[str, Any], expression: Mapping[str, Any]) -> bool:
    key, operator, values = str(expression.get("key", "")), expression.get("operator"), expression.get("values") or ()
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown label selector operator {operator!r}")


def _name(obj: Mapping[str, Any]) -> str:
    metadata = _mapping(obj.get("metadata"))
    return f"{obj.get('kind')} {metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
