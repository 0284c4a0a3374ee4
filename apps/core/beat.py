"""The elected Celery beat scheduler: any number of ``celery -A iccapp beat`` replicas may run, and only the one
holding the ``beat`` lease sends due tasks. The others keep the same schedule moving (each due entry is advanced
without being sent), so a standby that takes over sends what is due from then on instead of a backlog.

``iccapp.celery`` makes it the default scheduler (``beat_scheduler``), so the embedded default's beat thread uses
it too (on SQLite: one process, it is always elected).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry

from apps.core import heartbeats
from apps.core.leases import LeaderElector

logger = logging.getLogger(__name__)

BEAT_LEASE = "beat"


class LeaderScheduler(PersistentScheduler):
    """PersistentScheduler that sends only while it holds the ``beat`` lease (checked before every send)."""

    #: Wake at least this often: a standby that is elected starts sending within a second of it.
    max_interval = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.elector = LeaderElector(BEAT_LEASE)
        self._electing = False
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        """Called once by the scheduler that will run (not by the lazy one ``celery beat`` builds for its banner)."""
        super().setup_schedule()
        if not self._electing:
            self._electing = True
            self.elector.start()
            heartbeats.start_role("beat", extra=self._heartbeat_details)

    def _heartbeat_details(self) -> dict[str, Any]:
        held = self.elector.held
        return {"leases": [f"{held.name}#{held.generation}"] if held else [], "leader": held is not None}

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        if not self.elector.is_leader:  # the fence: a deposed beat sends nothing more
            logger.debug("beat standby: %s is due but another replica holds the beat lease", entry.name)
            return
        super().apply_entry(entry, producer=producer)

    def close(self) -> None:
        """Graceful stop (SIGTERM/SIGINT): release the lease so a standby takes over at once."""
        try:
            super().close()
        finally:
            if self._electing:  # celery closes twice on SIGTERM (its handler, then the loop's finally)
                self._electing = False
                self.elector.stop(release=True)
                heartbeats.stop_role("beat")
