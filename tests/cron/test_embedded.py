"""On the embedded default (``manage.py run`` with no DATABASE_URL or REDIS_URL: SQLite, in-process worker and
scheduler) a cron job fires: the embedded scheduler inserts the run on SQLite and the embedded worker, which
consumes every queue ICC's tasks use, calls the target."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.components import ROOT, free_port
from tests.support.receiver import Receiver
from tests.support.server import stop_process, wait_ready

SETUP = """
from datetime import UTC, datetime, timedelta
from apps.cron.models import Job
from apps.cron.services.jobs import job_create
job, _ = job_create(name="embedded", schedule="@daily", http_url="{url}/embedded")
soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
Job.objects.filter(pk=job.pk).update(next_slot_at=soon, next_due_at=soon)  # the next slot, a few seconds away
"""


def test_a_job_fires_on_the_embedded_default(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "ICC_DATA_DIR": str(tmp_path),
        "LOG_FORMAT": "text",
    }
    receiver = Receiver().start()
    log_path = tmp_path / "run.log"
    process = None
    try:
        for command in (["migrate", "-v0"], ["shell", "-c", SETUP.format(url=receiver.url)]):
            done = subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "run", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_ready(f"http://127.0.0.1:{port}", process)
        got = receiver.wait_for(1, timeout=30)
        assert got[0].path == "/embedded" and got[0].headers["Idempotency-Key"].startswith("1:")
    finally:
        if process is not None:
            stop_process(process)
        receiver.stop()
    assert "embedded cron scheduler started" in log_path.read_text(errors="replace")
