"""The audit trail on real PostgreSQL: tamper evidence, concurrency, capture, redaction, reading."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, event_hash, verify
from apps.audit.models import AuditEvent
from apps.audit.redaction import REDACTED, diff, redact
from apps.audit.services import EventInput, audit_record, audit_record_many
from apps.audit.verification import check_checkpoint, verify_chain, write_checkpoint
from apps.users.services import user_create, user_update
from tests.support.components import ROOT
from tests.support.server import server_env

pytestmark = pytest.mark.django_db(transaction=True)


def make_events(n: int, *, target: str = "42") -> list[AuditEvent]:
    return audit_record_many(
        EventInput(action="tests.thing.touch", target_type="tests.thing", target_id=target, message=f"event {i}")
        for i in range(n)
    )


def verify_cmd() -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("audit_verify", stdout=out)
    except CommandError as exc:
        return False, str(exc)
    return True, out.getvalue()


def run_sql(sql: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


class TriggerOff:
    """Disable the append-only trigger, as an attacker with table-owner rights could."""

    def __enter__(self) -> None:
        run_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")

    def __exit__(self, *exc: object) -> None:
        run_sql("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")


# --- the chain as pure functions -------------------------------------------------------------------------


def test_hashes_cover_every_field_and_the_previous_hash():
    event = {
        "seq": 1,
        "time": timezone.now(),
        "actor_kind": "user",
        "actor_id": "1",
        "actor_name": "ada",
        "action": "a.b.c",
        "target_type": "",
        "target_id": "",
        "target_display": "",
        "scope_cluster": "",
        "scope_namespace": "",
        "scope_application": "",
        "outcome": "success",
        "message": "",
        "changes": {"x": 1},
        "request_id": "r",
        "client_ip": None,
        "user_agent": "",
        "source": "cli",
        "metadata": {},
        "prev_hash": GENESIS_HASH,
    }
    original = event_hash(event)
    for name, value in (("changes", {"x": 2}), ("prev_hash", "f" * 64), ("seq", 2), ("actor_name", "eve")):
        assert event_hash({**event, name: value}) != original, name
    assert event_hash(dict(reversed(list(event.items())))) == original, "key order must not matter"
    assert verify([{**event, "hash": original}]).ok


# --- tamper detection ---------------------------------------------------------------------------------------


def test_a_valid_chain_verifies():
    make_events(10)
    ok, out = verify_cmd()
    assert ok, out
    assert "10 events verified" in out


def test_update_and_delete_are_refused_by_the_trigger():
    make_events(3)
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=2).update(message="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=2).delete()
    assert AuditEvent.objects.get(seq=2).message == "event 1"


@pytest.mark.parametrize(
    ("tampering", "seq", "says"),
    [
        ("UPDATE audit_event SET message = 'nothing happened' WHERE seq = 4", 4, "hash does not match"),
        ("DELETE FROM audit_event WHERE seq = 6", 6, "sequence gap"),
    ],
    ids=["modified", "deleted"],
)
def test_a_modified_or_deleted_row_is_caught_at_its_sequence_number(tampering, seq, says):
    make_events(10)
    with TriggerOff():
        run_sql(tampering)
    ok, message = verify_cmd()
    assert not ok
    assert f"broken at seq {seq}" in message
    assert says in message


def test_a_forged_row_inserted_in_the_middle_is_caught():
    events = make_events(10)
    with TriggerOff():
        # Make room at seq 5 (renumbering from the top), then insert a forged event with a correct own hash.
        for seq in range(10, 4, -1):
            run_sql("UPDATE audit_event SET seq = seq + 1 WHERE seq = %s", [seq])
        forged = {field.name: getattr(events[4], field.name) for field in AuditEvent._meta.fields}
        forged.update(seq=5, message="forged", prev_hash=events[3].hash)
        forged["hash"] = event_hash(forged)
        AuditEvent.objects.bulk_create([AuditEvent(**forged)])
    ok, message = verify_cmd()
    assert not ok
    assert "broken at seq 6" in message, "the forged row is self-consistent; the next link is not"


def test_two_swapped_rows_are_caught():
    make_events(10)
    with TriggerOff():
        run_sql("UPDATE audit_event SET seq = -3 WHERE seq = 3")
        run_sql("UPDATE audit_event SET seq = 3 WHERE seq = 7")
        run_sql("UPDATE audit_event SET seq = 7 WHERE seq = -3")
    ok, message = verify_cmd()
    assert not ok
    assert "broken at seq 3" in message


def test_verify_accepts_a_time_range_and_refuses_an_inverted_one():
    make_events(5)
    now = timezone.now()
    out = io.StringIO()
    call_command("audit_verify", since=(now - timedelta(hours=1)).isoformat(), until=now.isoformat(), stdout=out)
    assert "5 events verified" in out.getvalue()
    with pytest.raises(CommandError, match="--since is after --until"):
        call_command("audit_verify", since=now.isoformat(), until=(now - timedelta(hours=1)).isoformat())
    with pytest.raises(CommandError, match="--since: 'yesterday' is not an ISO 8601"):
        call_command("audit_verify", since="yesterday")


def test_signed_checkpoints_prove_the_head(tmp_path, settings):
    settings.AUDIT_SIGNING_KEY = "k" * 40
    make_events(4)
    path = write_checkpoint(tmp_path)
    document = json.loads(path.read_text())
    assert document["checkpoint"]["last_seq"] == 4
    assert document["checkpoint"]["count"] == 4
    assert check_checkpoint(path) == (True, "checkpoint at seq 4 matches")
    document["checkpoint"]["count"] = 3
    path.write_text(json.dumps(document))
    ok, reason = check_checkpoint(path)
    assert not ok
    assert "signature does not match" in reason
    fresh = write_checkpoint(tmp_path / "b")
    settings.AUDIT_SIGNING_KEY = "other-key-" * 4
    assert check_checkpoint(fresh)[0] is False, "a checkpoint only verifies with the key that signed it"


# --- concurrency --------------------------------------------------------------------------------------------

WRITER = """
import sys, django
django.setup()
from apps.audit.services import audit_record
for i in range(int(sys.argv[1])):
    audit_record(action="tests.concurrent.write", target_type="tests.writer", target_id=sys.argv[2], message=str(i))
"""


def test_eight_processes_writing_at_once_make_one_gap_free_valid_chain():
    per_process = 40
    env = server_env(DJANGO_SETTINGS_MODULE="iccapp.settings")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(per_process), str(n)], cwd=ROOT, env=env, stderr=subprocess.PIPE
        )
        for n in range(8)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 8 * per_process + 1)), "gap-free and unique"
    assert AuditEvent.objects.values("target_id").distinct().count() == 8
    result = verify_chain()
    assert result.ok, result.reason
    assert result.checked == 8 * per_process


# --- capture ------------------------------------------------------------------------------------------------


def test_a_rolled_back_action_leaves_no_event():
    with pytest.raises(RuntimeError), transaction.atomic():
        user_create(username="ephemeral", password="Ephemeral-pass-91")
        raise RuntimeError("abort")
    assert not AuditEvent.objects.filter(action="users.user.create").exists()
    user_create(username="lasting", password="Lasting-pass-91")
    event = AuditEvent.objects.get(action="users.user.create")
    assert event.target_display == "lasting"
    assert event.changes["username"] == {"before": None, "after": "lasting"}


def test_a_denied_api_action_leaves_a_denied_event(client, viewer_persona):
    client.login(username=viewer_persona.username, password=viewer_persona.password)
    response = client.post(
        "/api/v1/users/", {"username": "x"}, content_type="application/json", headers={"X-Request-ID": "deny-1"}
    )
    assert response.status_code == 403
    event = AuditEvent.objects.get(outcome="denied")
    assert event.action == "api.user.create"
    assert event.actor_name == viewer_persona.username
    assert event.request_id == "deny-1"
    assert event.source == "api"


def test_a_hidden_object_is_a_404_recorded_as_denied(client, outsider_persona, admin_persona):
    client.login(username=outsider_persona.username, password=outsider_persona.password)
    assert client.get(f"/api/v1/users/{admin_persona.user.pk}/").status_code == 404
    event = AuditEvent.objects.get(outcome="denied")
    assert event.action == "api.user.retrieve"
    assert event.target_id == str(admin_persona.user.pk)
    assert client.get("/api/v1/users/999999/").status_code == 404
    assert AuditEvent.objects.filter(outcome="denied").count() == 1, "a truly missing object is no refusal"


def test_logins_logouts_and_failed_logins_are_recorded(client, viewer_persona):
    client.post(
        "/accounts/login/",
        {"username": viewer_persona.username, "password": "wrong"},
        headers={"User-Agent": "pytest-agent"},
    )
    client.post("/accounts/login/", {"username": viewer_persona.username, "password": viewer_persona.password})
    client.post("/accounts/logout/")
    events = list(AuditEvent.objects.filter(action__startswith="users.session").order_by("seq"))
    assert [(e.action, e.outcome) for e in events] == [
        ("users.session.login", "failed"),
        ("users.session.login", "success"),
        ("users.session.logout", "success"),
    ]
    assert events[0].user_agent == "pytest-agent"
    assert events[0].client_ip == "127.0.0.1"
    assert events[1].actor_name == viewer_persona.username
    assert "wrong" not in json.dumps([e.metadata for e in events] + [e.changes for e in events])
    assert verify_chain().ok, "events with IPs, user agents and JSON survive the database round trip"


def test_admin_changes_are_recorded_with_diffs(client, admin_persona, viewer_persona):
    client.login(username=admin_persona.username, password=admin_persona.password)
    url = f"/admin/users/user/{viewer_persona.user.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {
        k: v for k, v in form.initial.items() if v is not None and k not in ("password", "groups", "user_permissions")
    }
    joined = form.initial["date_joined"]
    data.update(
        email="vic@example.com",
        date_joined_0=joined.strftime("%Y-%m-%d"),
        date_joined_1=joined.strftime("%H:%M:%S"),
        last_login_0="",
        last_login_1="",
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    event = AuditEvent.objects.get(action="users.user.update", source="admin")
    assert event.changes["email"] == {"before": "", "after": "vic@example.com"}
    assert event.actor_name == admin_persona.username


def test_secrets_never_reach_changes_or_metadata():
    user = user_create(username="secretive", password="Secretive-pass-91")
    audit_record(
        action="tests.secret.store",
        target=user,
        changes=diff(
            {"token": None, "kubeconfig": None, "name": "a"},
            {"token": "abc123tok", "kubeconfig": "apiVersion: v1 ... client-key-data: AAA", "name": "b"},
        ),
        metadata={
            "headers": {"Authorization": "Bearer xyz789"},
            "api_key": "k-999",
            "note": "fine",
            "nested": [{"client_secret": "cs-555"}],
            "ca_fingerprint": "visible",
        },
        secret_fields=("ca_fingerprint",),
    )
    dumped = json.dumps(list(AuditEvent.objects.values("changes", "metadata", "message")))
    for secret in ("Secretive-pass-91", "abc123tok", "client-key-data", "xyz789", "k-999", "cs-555", "visible"):
        assert secret not in dumped, secret
    assert REDACTED in dumped
    assert '"note": "fine"' in dumped
    assert redact({"password": "p", "list": [{"token": "t"}]}) == {"password": REDACTED, "list": [{"token": REDACTED}]}


def test_tasks_record_as_the_system_actor_with_their_origin():
    from apps.core import context

    context.start(request_id="origin-77", source="task", task="clusters.sync")
    try:
        event = audit_record(action="tests.task.run", target_type="tests.thing", target_id="1")
    finally:
        context.start()
    assert (event.actor_kind, event.actor_id, event.source) == ("system", "clusters.sync", "task")
    assert event.request_id == "origin-77"
    assert event.metadata["task"] == "clusters.sync"


# --- reading ------------------------------------------------------------------------------------------------


def test_api_filters_and_cursor_pagination(client, admin_persona):
    client.login(username=admin_persona.username, password=admin_persona.password)
    make_events(30, target="7")
    make_events(5, target="8")
    body = client.get("/api/v1/audit/events/", {"target_id": "7", "limit": 20}).json()
    assert len(body["results"]) == 20
    assert all(e["target_id"] == "7" for e in body["results"])
    rest = client.get(body["next"]).json()
    assert len(rest["results"]) == 10
    seqs = [e["seq"] for e in body["results"] + rest["results"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 30
    texts = client.get("/api/v1/audit/events/", {"q": "event 3", "target_id": "8"}).json()["results"]
    assert [e["message"] for e in texts] == ["event 3"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "last tuesday"}, "since"),
        ({"colour": "red"}, "colour"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"outcome": "maybe"}, "outcome"),
    ],
)
def test_bad_filters_are_a_400_naming_the_parameter(client, admin_persona, params, field):
    client.login(username=admin_persona.username, password=admin_persona.password)
    response = client.get("/api/v1/audit/events/", params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    page = client.get("/audit/", params)
    assert page.status_code == 400
    assert field in page.content.decode()


def test_people_without_grants_see_only_their_own_events(client, outsider_persona):
    make_events(3)
    client.login(username=outsider_persona.username, password=outsider_persona.password)
    results = client.get("/api/v1/audit/events/").json()["results"]
    assert [e["action"] for e in results] == ["users.session.login"]
    assert results[0]["actor_name"] == outsider_persona.username


def test_the_audit_page_and_history_show_events(client, admin_persona):
    client.login(username=admin_persona.username, password=admin_persona.password)
    user_update(user=admin_persona.user, display_name="Ada L.")
    html = client.get("/audit/").content.decode()
    assert "users.user.update" in html
    assert 'ws-connect="/ws/?topics=audit"' in html
    history = client.get(f"/audit/history/users.user/{admin_persona.user.pk}/").content.decode()
    assert "users.user.update" in history
    assert "display_name" in history
    settings_page = client.get("/users/").content.decode()
    assert "History" in settings_page


def test_exports_stream_100k_events_in_bounded_memory(client, admin_persona):
    client.login(username=admin_persona.username, password=admin_persona.password)
    for _ in range(20):
        make_events(5000)
    total = AuditEvent.objects.count()
    assert total >= 100_000
    for url, header in (("/audit/export.csv", b"seq,time,"), ("/audit/export.jsonl", b'{"seq":')):
        tracemalloc.start()
        response = client.get(url)
        assert response.streaming
        lines = 0
        first = b""
        for chunk in response.streaming_content:
            first = first or chunk[:20]
            lines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert first.startswith(header)
        assert lines == total + (1 if url.endswith(".csv") else 0)
        assert peak < 40 * 1024 * 1024, f"{url} peaked at {peak / 1e6:.0f} MB"


def test_an_empty_export_is_a_file_with_headers(client, admin_persona):
    client.login(username=admin_persona.username, password=admin_persona.password)
    body = b"".join(client.get("/audit/export.csv", {"action": "no.such.action"}).streaming_content)
    assert body.decode().strip().startswith("seq,time,actor_kind")
    assert body.count(b"\n") == 1
    assert b"".join(client.get("/audit/export.jsonl", {"action": "no.such"}).streaming_content) == b""


async def test_the_live_tail_and_the_history_panel_show_a_new_event(admin_persona, viewer_persona, outsider_persona):
    from asgiref.sync import sync_to_async

    from apps.audit.events import history as history_topic
    from tests.support.websocket import connect, session_cookie

    cookie = await sync_to_async(session_cookie)(admin_persona)
    topic = history_topic("users.user", str(viewer_persona.user.pk))
    communicator, connected, _ = await connect(f"/ws/?topics=audit,{topic}", cookie)
    assert connected
    snapshots = [await communicator.receive_from(timeout=5) for _ in range(2)]
    assert any('id="audit-live-status"' in s for s in snapshots)
    assert any(f'id="{topic.replace(".", "-")}"' in s for s in snapshots)

    await sync_to_async(user_update)(user=viewer_persona.user, display_name="Victor")
    pushed = [await communicator.receive_from(timeout=5) for _ in range(2)]
    tail = next(p for p in pushed if "afterbegin:#audit-rows" in p)
    panel = next(p for p in pushed if topic.replace(".", "-") in p)
    assert "users.user.update" in tail
    assert "users.user.update" in panel
    assert "display_name" in panel
    await communicator.disconnect()

    outsider_cookie = await sync_to_async(session_cookie)(outsider_persona)
    outsider, connected, _ = await connect("/ws/?topics=audit", outsider_cookie)
    assert connected
    assert "not allowed to follow audit" in await outsider.receive_from(timeout=5)
    await outsider.disconnect()


def test_the_admin_offers_no_edit_or_delete(client, admin_persona):
    client.login(username=admin_persona.username, password=admin_persona.password)
    event = make_events(1)[0]
    assert client.get("/admin/audit/auditevent/").status_code == 200
    page = client.get(f"/admin/audit/auditevent/{event.seq}/change/")
    assert page.status_code == 200
    assert "Save" not in page.content.decode()
    assert client.post(f"/admin/audit/auditevent/{event.seq}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert AuditEvent.objects.filter(seq=event.seq).exists()


def test_verification_results_reach_metrics(client):
    from apps.audit.tasks import audit_verify_chain

    make_events(3)
    summary = audit_verify_chain()
    assert summary["ok"] is True
    assert summary["checked"] == 3
    text = client.get("/metrics").content.decode()
    assert "icc_audit_chain_valid 1.0" in text
    assert "icc_audit_chain_verified_events 3.0" in text
