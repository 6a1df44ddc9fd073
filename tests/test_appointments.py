"""Booking, editing, rescheduling and cancelling; guests; times in the viewer's zone."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from support import (
    audit_events,
    book,
    get_appointment,
    invite,
    invite_path,
    local_input,
    now,
    snapshot,
)

from portal.extensions import db
from portal.models import Appointment, Participant, Status


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def valid_booking(**changes: str) -> dict[str, str]:
    data = {"kind": "consult", "title": "Follow-up", "duration_minutes": "30",
            "starts_at": local_input(now() + timedelta(hours=2)), "recording_policy": "consent"}
    data.update(changes)
    return data


@pytest.fixture
def host(people, browser):
    return browser.login(people.host_a)


# --- booking -----------------------------------------------------------------------------------


def test_booking_is_stored_in_utc_with_the_host_as_first_participant(app, people, host):
    start = (now() + timedelta(hours=2)).replace(second=0, microsecond=0)
    response = host.post("/appointments/new", valid_booking(
        kind="hearing", recording_policy="notice", duration_minutes="90",
        starts_at=local_input(start)))
    assert response.status_code == 302
    appointment_id = int(response.headers["Location"].rsplit("/", 1)[1])
    appointment = get_appointment(app, appointment_id)
    assert appointment.starts_at == start and appointment.starts_at.tzinfo is UTC
    assert appointment.ends_at == start + timedelta(minutes=90)
    assert (appointment.kind.value, appointment.recording_policy.value) == ("hearing", "notice")
    assert appointment.status is Status.SCHEDULED and appointment.host_id == people.host_a.id
    with app.app_context():
        participants = db.session.scalars(select(Participant).where(
            Participant.appointment_id == appointment_id)).all()
        assert [(p.role.value, p.user_id, p.invite_token_hash) for p in participants] == [
            ("host", people.host_a.id, None)]
    [created] = audit_events(app, "appointment.created")
    assert created.object_id == str(appointment_id)
    assert created.actor_type == "user" and created.actor_id == str(people.host_a.id)
    assert "Follow-up" not in created.details  # titles may name a patient; the trail does not


def test_a_start_a_few_minutes_ago_is_allowed(app, host):
    """A consult booked as it begins: up to a quarter of an hour late is fine."""
    response = host.post("/appointments/new", valid_booking(
        starts_at=local_input(now() - timedelta(minutes=5))))
    assert response.status_code == 302


@pytest.mark.parametrize("changes,status,message", [
    ({"title": ""}, 400, "This field is required."),
    ({"title": "   "}, 400, "This field is required."),
    ({"title": "x" * 201}, 400, "Field cannot be longer than 200 characters."),
    ({"title": "x" * 100_000}, 400, "Field cannot be longer than 200 characters."),
    ({"duration_minutes": "4"}, 400, "Number must be between 5 and 720."),
    ({"duration_minutes": "721"}, 400, "Number must be between 5 and 720."),
    ({"duration_minutes": "-30"}, 400, "Number must be between 5 and 720."),
    ({"duration_minutes": "99999999999999999999"}, 400, "Number must be between 5 and 720."),
    ({"duration_minutes": "thirty"}, 400, "Not a valid integer value."),
    ({"duration_minutes": ""}, 400, "This field is required."),
    ({"starts_at": "tomorrow at ten"}, 400, "Not a valid datetime value."),
    ({"starts_at": ""}, 400, "This field is required."),
    ({"starts_at": "2026-02-30T10:00"}, 400, "Not a valid datetime value."),
    ({"starts_at": "{past}"}, 422, "The start time lies in the past."),
    ({"starts_at": "0001-01-01T00:00"}, 422, "The start time lies in the past."),
    ({"starts_at": "9999-12-31T23:59"}, 422, "The start time is too far ahead."),
    ({"starts_at": "9999-12-31T23:59", "duration_minutes": "720"}, 422,
     "The start time is too far ahead."),
    ({"recording_policy": "notice"}, 422, "Recording by notice is for hearings"),
    ({"recording_policy": "always"}, 400, "Not a valid choice."),
    ({"kind": "party"}, 400, "Not a valid choice."),
    ({"kind": ""}, 400, "This field is required."),
])
def test_booking_is_refused(app, host, changes, status, message):
    data = valid_booking(**changes)
    if data["starts_at"] == "{past}":
        data["starts_at"] = local_input(now() - timedelta(days=1))
    before = snapshot(app)
    response = host.post("/appointments/new", data)
    assert response.status_code == status
    assert message in html.unescape(response.get_data(as_text=True))
    assert snapshot(app) == before
    assert count(app, Appointment) == 0


@pytest.mark.parametrize("missing", ["kind", "title", "starts_at", "duration_minutes",
                                     "recording_policy"])
def test_booking_with_a_field_missing(app, host, missing):
    data = valid_booking()
    del data[missing]
    response = host.post("/appointments/new", data)
    assert response.status_code == 400
    assert count(app, Appointment) == 0


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("start", ["0001-01-01T00:00", "9999-12-31T23:59"])
def test_dates_at_the_edge_of_the_calendar(app, host, zone, start):
    """Converting these to UTC falls off the calendar; the form says so instead of failing."""
    host.client.set_cookie("tz", zone)
    response = host.post("/appointments/new", valid_booking(starts_at=start))
    assert 400 <= response.status_code < 500
    assert count(app, Appointment) == 0


# --- times in the viewer's zone ----------------------------------------------------------------


@pytest.mark.parametrize("month,utc_hour", [(1, 9), (7, 8)])  # CET in winter, CEST in summer
def test_times_are_entered_in_the_viewers_zone_and_stored_in_utc(app, host, month, utc_hour):
    year = now().year + 1
    host.client.set_cookie("tz", "Europe/Oslo")
    response = host.post("/appointments/new", valid_booking(
        starts_at=f"{year}-{month:02d}-15T10:00"))
    assert response.status_code == 302
    appointment_id = int(response.headers["Location"].rsplit("/", 1)[1])
    stored = get_appointment(app, appointment_id).starts_at
    assert stored == datetime(year, month, 15, utc_hour, 0, tzinfo=UTC)

    form = host.get(f"/appointments/{appointment_id}/edit").get_data(as_text=True)
    assert f'value="{year}-{month:02d}-15T10:00"' in form  # shown back in Oslo time
    page = host.get(f"/appointments/{appointment_id}").get_data(as_text=True)
    assert "10:00" in page and "Europe/Oslo" in page


def test_an_unknown_zone_falls_back_to_the_default(app, host):
    year = now().year + 1
    host.client.set_cookie("tz", "Mars/Olympus_Mons")
    response = host.post("/appointments/new", valid_booking(starts_at=f"{year}-01-15T10:00"))
    assert response.status_code == 302
    appointment_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert get_appointment(app, appointment_id).starts_at == datetime(year, 1, 15, 10,
                                                                      tzinfo=UTC)


def test_rescheduling_in_the_viewers_zone(app, host, people):
    appointment_id = book(app, people.host_a.id)
    year = now().year + 1
    host.client.set_cookie("tz", "America/New_York")
    response = host.post(f"/appointments/{appointment_id}/edit", valid_booking(
        starts_at=f"{year}-07-04T09:30"))
    assert response.status_code == 302
    assert get_appointment(app, appointment_id).starts_at == datetime(year, 7, 4, 13, 30,
                                                                      tzinfo=UTC)


# --- editing, rescheduling, cancelling ---------------------------------------------------------


def test_edit_changes_the_title(app, host, people):
    appointment_id = book(app, people.host_a.id)
    before = get_appointment(app, appointment_id)
    form = host.get(f"/appointments/{appointment_id}/edit")
    assert form.status_code == 200 and 'value="Follow-up"' in form.get_data(as_text=True)
    response = host.post(f"/appointments/{appointment_id}/edit", valid_booking(
        title="Knee, second look", starts_at=local_input(before.starts_at)))
    assert response.status_code == 302
    after = get_appointment(app, appointment_id)
    assert after.title == "Knee, second look" and after.starts_at == before.starts_at
    [updated] = audit_events(app, "appointment.updated")
    assert '"changed":["title"]' in updated.details and "Knee" not in updated.details
    assert audit_events(app, "appointment.rescheduled") == []


def test_reschedule_moves_start_and_end(app, host, people):
    appointment_id = book(app, people.host_a.id)
    new_start = (now() + timedelta(days=3)).replace(second=0, microsecond=0)
    response = host.post(f"/appointments/{appointment_id}/edit", valid_booking(
        starts_at=local_input(new_start), duration_minutes="60"))
    assert response.status_code == 302
    after = get_appointment(app, appointment_id)
    assert (after.starts_at, after.ends_at) == (new_start, new_start + timedelta(minutes=60))
    [moved] = audit_events(app, "appointment.rescheduled")
    assert '"changed":["duration_minutes","starts_at"]' in moved.details


@pytest.mark.parametrize("changes,status", [
    ({"title": ""}, 400),
    ({"duration_minutes": "0"}, 400),
    ({"starts_at": "{past}"}, 422),
    ({"starts_at": "9999-12-31T23:59"}, 422),
    ({"recording_policy": "notice"}, 422),
])
def test_edit_is_refused(app, host, people, changes, status):
    appointment_id = book(app, people.host_a.id)
    data = valid_booking(**changes)
    if data["starts_at"] == "{past}":
        data["starts_at"] = local_input(now() - timedelta(days=1))
    before = snapshot(app)
    assert host.post(f"/appointments/{appointment_id}/edit", data).status_code == status
    assert snapshot(app) == before


def test_an_appointment_already_under_way_keeps_its_start_when_edited(app, host, people):
    """Its start lies in the past now, and has seconds (as one booked through the API or the
    demo may): the form shows whole minutes, yet changing only the title must work."""
    appointment_id = book(app, people.host_a.id)
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        appointment.starts_at = (now() - timedelta(hours=1)).replace(second=30)
        appointment.ends_at = appointment.starts_at + timedelta(hours=2)
        db.session.commit()
    start = get_appointment(app, appointment_id).starts_at
    response = host.post(f"/appointments/{appointment_id}/edit", valid_booking(
        title="Renamed", starts_at=local_input(start), duration_minutes="120"))
    assert response.status_code == 302
    after = get_appointment(app, appointment_id)
    assert after.title == "Renamed"
    assert after.starts_at == start  # seconds and all
    assert audit_events(app, "appointment.rescheduled") == []


def test_cancel(app, host, people, new_browser):
    appointment_id = book(app, people.host_a.id)
    guest_id, token = invite(app, appointment_id)
    response = host.post(f"/appointments/{appointment_id}/cancel")
    assert response.status_code == 302
    assert get_appointment(app, appointment_id).status is Status.CANCELLED
    [cancelled] = audit_events(app, "appointment.cancelled")
    assert cancelled.object_id == str(appointment_id)
    page = host.get(f"/appointments/{appointment_id}").get_data(as_text=True)
    assert f"/appointments/{appointment_id}/edit" not in page
    assert new_browser().get(f"/j/{token}").status_code == 410


def test_a_cancelled_appointment_cannot_be_changed(app, host, people):
    appointment_id = book(app, people.host_a.id)
    guest_id, _ = invite(app, appointment_id)
    assert host.post(f"/appointments/{appointment_id}/cancel").status_code == 302
    before = snapshot(app)

    message = "Only a scheduled appointment can be changed; this one is cancelled."
    for response in (host.get(f"/appointments/{appointment_id}/edit"),
                     host.post(f"/appointments/{appointment_id}/edit", valid_booking()),
                     host.post(f"/appointments/{appointment_id}/cancel")):
        assert response.status_code == 409
        assert message in response.get_data(as_text=True)
    response = host.post(f"/appointments/{appointment_id}/guests",
                         {"display_name": "Kim", "role": "client"})
    assert response.status_code == 409
    assert "Guests can only be added to a scheduled appointment." in response.get_data(
        as_text=True)
    response = host.post(f"/appointments/{appointment_id}/guests/{guest_id}/reissue")
    assert response.status_code == 302
    assert "over or cancelled" in host.get(response.headers["Location"]).get_data(as_text=True)
    assert snapshot(app) == before


# --- guests ------------------------------------------------------------------------------------


def test_add_guest_shows_the_link_once(app, host, people, new_browser):
    appointment_id = book(app, people.host_a.id)
    response = host.post(f"/appointments/{appointment_id}/guests", {
        "display_name": "Pat Doe", "role": "patient", "email": "pat@example.org"})
    # Post/redirect/get: the page shows the link once, and a reload neither shows it
    # again nor adds another guest.
    assert response.status_code == 302
    assert response.headers["Location"] == f"/appointments/{appointment_id}"
    shown = host.get(response.headers["Location"])
    path = invite_path(shown)
    assert path not in response.get_data(as_text=True)
    assert new_browser().get(path).status_code == 200
    page = host.get(response.headers["Location"]).get_data(as_text=True)
    assert "Pat Doe" in page and path not in page and 'id="new-link"' not in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Participant).where(
            Participant.appointment_id == appointment_id,
            Participant.display_name == "Pat Doe")) == 1
    [created] = audit_events(app, "invite.created")
    assert "Pat" not in created.details and "pat@example.org" not in created.details


def test_more_than_max_guests_is_refused(app, host, people):
    app.config["MAX_GUESTS"] = 2
    appointment_id = book(app, people.host_a.id)
    for name in ("One", "Two"):
        response = host.post(f"/appointments/{appointment_id}/guests",
                             {"display_name": name, "role": "client"})
        assert response.status_code == 302
    before = snapshot(app)
    response = host.post(f"/appointments/{appointment_id}/guests",
                         {"display_name": "Three", "role": "client"})
    assert response.status_code == 409
    assert "This appointment has the most guests allowed." in response.get_data(as_text=True)
    assert snapshot(app) == before


@pytest.mark.parametrize("data", [
    {},
    {"display_name": "Kim"},
    {"role": "client"},
    {"display_name": "   ", "role": "client"},
    {"display_name": "Kim", "role": "host"},  # a guest is never a host
    {"display_name": "Kim", "role": "judge"},
    {"display_name": "x" * 121, "role": "client"},
    {"display_name": "x" * 100_000, "role": "client"},
    {"display_name": "Kim", "role": "client", "email": "not an address"},
    {"display_name": "Kim", "role": "client", "email": "k@" + "x" * 300 + ".org"},
])
def test_add_guest_garbage(app, host, people, data):
    appointment_id = book(app, people.host_a.id)
    before = snapshot(app)
    response = host.post(f"/appointments/{appointment_id}/guests", data)
    assert response.status_code == 400
    assert snapshot(app) == before


def test_revoke_and_reissue_are_audited(app, host, people):
    appointment_id = book(app, people.host_a.id)
    guest_id, _ = invite(app, appointment_id)
    url = f"/appointments/{appointment_id}/guests/{guest_id}"
    assert host.post(f"{url}/revoke").status_code == 302
    assert host.post(f"{url}/revoke").status_code == 302  # twice: still one event
    assert host.post(f"{url}/reissue").status_code == 302
    actions = [e.action for e in audit_events(app)
               if (e.object_type, e.object_id) == ("participant", str(guest_id))]
    assert actions == ["invite.created", "invite.revoked", "invite.reissued"]


def test_the_hosts_own_participant_row_is_not_a_guest(app, host, people):
    appointment_id = book(app, people.host_a.id)
    with app.app_context():
        own_row = db.session.scalar(select(Participant.id).where(
            Participant.appointment_id == appointment_id))
    before = snapshot(app)
    for action in ("revoke", "reissue"):
        response = host.post(f"/appointments/{appointment_id}/guests/{own_row}/{action}")
        assert response.status_code == 404
    assert snapshot(app) == before


def test_guest_of_another_appointment_is_not_found(app, host, people):
    mine = book(app, people.host_a.id)
    also_mine = book(app, people.host_a.id, title="Second")
    guest_id, _ = invite(app, also_mine)
    before = snapshot(app)
    response = host.post(f"/appointments/{mine}/guests/{guest_id}/revoke")
    assert response.status_code == 404
    assert snapshot(app) == before


def test_list_shows_upcoming_and_past(app, host, people):
    book(app, people.host_a.id, title="Soon")
    past = book(app, people.host_a.id, title="Earlier")
    with app.app_context():
        appointment = db.session.get(Appointment, past)
        appointment.starts_at -= timedelta(days=2)
        appointment.ends_at -= timedelta(days=2)
        db.session.commit()
    page = host.get("/appointments/").get_data(as_text=True)
    assert page.index("Soon") < page.index("Past") < page.index("Earlier")


# --- text the databases do not accept ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("where", ["title", "guest", "login", "user", "token"])
def test_nul_characters_are_refused(app, people, new_browser, where):
    """PostgreSQL cannot store U+0000 in text; no form may turn that into a 500."""
    appointment_id = book(app, people.host_a.id)
    browser = new_browser()
    if where in ("user", "token"):
        browser.login(people.admin)
    elif where != "login":
        browser.login(people.host_a)
    before = snapshot(app)
    url, data = {
        "title": ("/appointments/new", valid_booking(title="Pat\x00Doe")),
        "guest": (f"/appointments/{appointment_id}/guests",
                  {"display_name": "Pat\x00", "role": "patient"}),
        "login": ("/login", {"email": "a\x00@example.org", "password": "x\x00"}),
        "user": ("/admin/users", {"email": "n@example.org", "name": "N\x00", "role": "host"}),
        "token": ("/admin/tokens", {"user_id": str(people.host_a.id), "name": "EPJ\x00"}),
    }[where]
    response = browser.post(url, data)
    assert 400 <= response.status_code < 500
    if where != "login":  # a refused sign-in is audited
        assert snapshot(app) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_guests_added_at_the_same_moment_cannot_pass_the_limit(app, people):
    """Each request counts the guests under a lock on the appointment: of several added at
    once with one place left, exactly one gets in."""
    import threading

    from portal.appointments import services as appointment_services
    from portal.errors import Conflict
    from portal.models import ParticipantRole

    app.config["MAX_GUESTS"] = 1
    appointment_id = book(app, people.host_a.id)
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def add(name: str) -> None:
        with app.app_context():
            start.wait()
            appointment = db.session.get(Appointment, appointment_id)
            try:
                appointment_services.add_guest(appointment, display_name=name,
                                               role=ParticipantRole.CLIENT)
                db.session.commit()
                outcomes.append("added")
            except Conflict:
                db.session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=add, args=(f"Guest {i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["added", "refused", "refused", "refused"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Participant).where(
            Participant.appointment_id == appointment_id,
            Participant.role != ParticipantRole.HOST)) == 1
