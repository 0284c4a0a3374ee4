"""The chaos suite, reduced (``bench/chaos.py --quick``): one fault of each kind against ICC's roles as separate
processes on their own PostgreSQL and Redis, a real kube-apiserver, and a steady workload.

Asserted: the run ends, its last line is JSON with the keys the issue names, and the functional outcome holds:
nothing acknowledged is lost, no external effect is duplicated, the audit chain verifies, the observed state
equals the cluster's. No timing is asserted (time to steady state is printed, and depends on the machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.components import ROOT, require

pytestmark = pytest.mark.slow

CHAOS_TIMEOUT_S = 600  # about 3 minutes on 2 cores; a loaded machine takes longer
PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def tail(text: str | bytes | None, lines: int = 80) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


@pytest.mark.timeout(CHAOS_TIMEOUT_S + 600)
def test_one_fault_of_each_kind_loses_and_duplicates_nothing() -> None:
    require((PG_BIN / "initdb").exists(), f"PostgreSQL server binaries are missing in {PG_BIN}")
    require(bool(shutil.which("redis-server")), "redis-server is missing (apt-get install redis-server)")
    from tests.support.kube import kube_bin_dir

    kube_bin_dir()  # built here (in this test's time, not the bench's) when missing
    try:
        completed = subprocess.run(
            [sys.executable, str(Path("bench") / "chaos.py"), "--quick"],
            cwd=ROOT,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=CHAOS_TIMEOUT_S,
            check=False,  # asserted below, with the output
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"bench/chaos.py --quick took over {CHAOS_TIMEOUT_S} s:\n{tail(exc.stdout)}\n{tail(exc.stderr)}")
    output = f"--- stdout\n{tail(completed.stdout)}\n--- stderr\n{tail(completed.stderr)}"
    assert completed.returncode == 0, output
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    print(completed.stdout.strip().splitlines()[-1])

    expected = {"lost", "duplicated", "chain_valid", "steady_p95_s", "observed_equal", "faults_by_kind", "quick"}
    assert expected <= summary.keys(), output
    assert summary["quick"] is True
    assert summary["faults_by_kind"] == {
        "worker": 1,
        "scheduler": 1,
        "watcher": 1,
        "redis": 1,
        "postgres": 1,
        "apiserver": 1,
    }, output
    # The workload really ran through the faults: writes acknowledged, scale rounds applied, cron delivered.
    assert summary["writes_acked"] > 0, output
    assert summary["scale_rounds_accepted"] > 0, output
    assert summary["cron_deliveries"] > 0, output
    assert summary["lost"] == 0, output
    assert summary["duplicated"] == 0, output
    assert summary["chain_valid"] == 1, output
    assert summary["observed_equal"] == 1, output
    assert summary["steady_p95_s"] is not None and summary["steady_p95_s"] > 0
