"""Booking a hearing with its roles (issue 12): through /api/v1 in one request, and on the
appointment page; staff seats; references checked (422, nothing written); screening changed
later; the observer link on, off and joined; staff who sit in a hearing see and open it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from court_booking import Api, add_staff, book_hearing
from sqlalchemy import func, select
from support import audit_events, book, snapshot

from portal.appointments.hearing import Seat, language_tag
from portal.errors import DomainError
from portal.extensions import db
from portal.models import (
    Appointment,
    LobbyState,
    Participant,
    ParticipantRole,
    Representation,
    Screening,
)

R = ParticipantRole


def starts(minutes: int = 10) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def hearing_body(participants: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"kind": "hearing", "title": "Case 17/2026", "starts_at": starts(),
            "duration_minutes": 90, "recording_policy": "notice",
            "participants": participants, **more}


@pytest.fixture
def bench(app, people) -> dict[str, Any]:
    """Three staff accounts besides the people: a judge, a clerk, a panel member."""
    return {"judge": add_staff(app, "judge@example.org", "Judge Dredd"),
            "clerk": add_staff(app, "clerk@example.org", "Clerk Kent"),
            "panel": add_staff(app, "panel@example.org", "Panel Pam")}


def full_booking() -> list[dict[str, Any]]:
    """A whole hearing: the bench, counsel for a party, a witness with an interpreter."""
    return [
        {"ref": "judge", "role": "judge", "staff_email": "JUDGE@example.org"},
        {"ref": "clerk", "role": "clerk", "staff_email": "clerk@example.org",
         "display_name": "The clerk"},
        {"ref": "counsel", "role": "counsel", "display_name": "Ada Advocate",
         "email": "ada@example.org", "represents": ["claimant"]},
        {"ref": "claimant", "role": "party", "display_name": "Cleo Claimant"},
        {"ref": "witness", "role": "witness", "display_name": "Wendy Witness",
         "screened_from": ["claimant"]},
        {"ref": "interpreter", "role": "interpreter", "display_name": "Ivan Tolk",
         "interprets_for": "witness", "language": "PL"},
    ]


def court_rows(app) -> dict[str, int]:
    with app.app_context():
        return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                or 0 for model in (Appointment, Participant, Representation, Screening)}


# The one-request booking -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_clerk_books_a_whole_hearing_in_one_request(app, people, bench):
    api = Api.of(app, people.host_a.id)
    response = api.call("POST", "/api/v1/appointments",
                        hearing_body(full_booking(), observer_link=True))
    assert response.status_code == 201, response.get_json()
    booked = response.get_json()
    people_by_ref = {p["ref"]: p for p in booked["participants"] if p["ref"]}
    host_row = booked["participants"][0]
    assert (host_row["role"], host_row["ref"], host_row["invite_url"]) == ("host", None, None)
    judge, clerk = people_by_ref["judge"], people_by_ref["clerk"]
    assert (judge["role"], judge["staff"], judge["invite_url"]) == ("judge", True, None)
    assert judge["display_name"] == "Judge Dredd"  # the account's name when none is given
    assert (clerk["display_name"], clerk["invite_url"]) == ("The clerk", None)
    claimant, witness = people_by_ref["claimant"], people_by_ref["witness"]
    counsel, interpreter = people_by_ref["counsel"], people_by_ref["interpreter"]
    assert counsel["represents"] == [claimant["id"]]
    assert witness["screened_from"] == [claimant["id"]]
    assert (interpreter["interprets_for"], interpreter["language"]) == (witness["id"], "pl")
    guests = [counsel, claimant, witness, interpreter]
    assert all(p["invite_url"] and p["staff"] is False for p in guests)
    visitor = app.test_client()
    for guest in guests:
        assert visitor.get(urlsplit(guest["invite_url"]).path).status_code == 200
    observer_path = urlsplit(booked["observer_url"]).path
    assert observer_path.startswith("/o/")
    assert visitor.get(observer_path).status_code == 200

    # Shown back: the links never again, everything else the same.
    base = f"/api/v1/appointments/{booked['id']}"
    shown = api.call("GET", base).get_json()
    assert shown["observer_link_enabled"] is True and "observer_url" not in shown
    listed = api.call("GET", base + "/participants").get_json()
    assert [p["role"] for p in listed] == ["host", "judge", "clerk", "counsel", "party",
                                           "witness", "interpreter"]
    by_id = {p["id"]: p for p in listed}
    for made in booked["participants"]:
        again = by_id[made["id"]]
        assert "invite_url" not in again
        assert {k: v for k, v in made.items() if k not in ("invite_url", "ref")} == again
    with app.app_context():
        judge_row = db.session.get(Participant, judge["id"])
        assert judge_row.user_id == bench["judge"].id and judge_row.invite_token_hash is None
        assert judge_row.lobby_state is LobbyState.ADMITTED

    # The audit trail: ids only, never a name, an address or a link.
    trail = audit_events(app)
    actions = [e.action for e in trail if e.actor_type == "api_token"]
    assert actions.count("staff.seated") == 2 and actions.count("invite.created") == 4
    assert "observer_link.enabled" in actions
    text = " ".join(e.details or "" for e in trail)
    for secret in ("Dredd", "Clerk", "Ada", "Cleo", "Wendy", "Ivan", "example.org",
                   observer_path[3:], *(urlsplit(p["invite_url"]).path[3:] for p in guests)):
        assert secret not in text, secret
    seated = json.loads(next(e.details for e in trail if e.action == "staff.seated"))
    assert seated == {"appointment_id": booked["id"], "role": "judge",
                      "user_id": bench["judge"].id}


BAD = [
    # (what, participants, field, words in the message)
    ("interpreter for nobody", [{"ref": "i", "role": "interpreter", "display_name": "I",
                                 "interprets_for": "ghost", "language": "nb"}],
     "participants.0.interprets_for", "nobody"),
    ("screening names nobody", [{"ref": "w", "role": "witness", "display_name": "W",
                                 "screened_from": ["ghost"]}],
     "participants.0.screened_from", "nobody"),
    ("counsel for a non-party", [
        {"ref": "c", "role": "counsel", "display_name": "C", "represents": ["w"]},
        {"ref": "w", "role": "witness", "display_name": "W"}],
     "participants.0.represents", "only parties"),
    ("unknown staff e-mail", [{"role": "judge", "staff_email": "nobody@example.org"}],
     "participants.0.staff_email", "No active staff account"),
    ("staff without e-mail", [{"role": "clerk", "display_name": "Clerk"}],
     "participants.0.staff_email", "e-mail"),
    ("guest with a staff e-mail", [{"role": "party", "display_name": "P",
                                    "staff_email": "judge@example.org"}],
     "participants.0.staff_email", "staff account"),
    ("the same judge twice", [{"role": "judge", "staff_email": "judge@example.org"},
                              {"role": "panel", "staff_email": "judge@example.org"}],
     "participants.1.staff_email", "already"),
    ("the host as judge", [{"role": "judge", "staff_email": "a@example.org"}],
     "participants.0.staff_email", "already"),
    ("language that is no tag", [
        {"ref": "w", "role": "witness", "display_name": "W"},
        {"role": "interpreter", "display_name": "I", "interprets_for": "w",
         "language": "Polish please"}], "participants.1.language", "language tag"),
    ("interpreter without a language", [
        {"ref": "w", "role": "witness", "display_name": "W"},
        {"role": "interpreter", "display_name": "I", "interprets_for": "w"}],
     "participants.1.language", "language"),
    ("interpreter for an observer", [
        {"ref": "o", "role": "observer", "display_name": "O"},
        {"role": "interpreter", "display_name": "I", "interprets_for": "o",
         "language": "nb"}], "participants.1.interprets_for", "observer"),
    ("interpreter for an interpreter", [
        {"ref": "i", "role": "interpreter", "display_name": "I"},
        {"role": "interpreter", "display_name": "J", "interprets_for": "i",
         "language": "nb"}], "participants.1.interprets_for", "interpreter"),
    ("a witness interprets", [
        {"ref": "p", "role": "party", "display_name": "P"},
        {"role": "witness", "display_name": "W", "interprets_for": "p", "language": "nb"}],
     "participants.1.interprets_for", "Only an interpreter"),
    ("a party represents", [
        {"ref": "p", "role": "party", "display_name": "P"},
        {"role": "party", "display_name": "Q", "represents": ["p"]}],
     "participants.1.represents", "Only counsel"),
    ("screened from themselves", [{"ref": "w", "role": "witness", "display_name": "W",
                                   "screened_from": ["w"]}],
     "participants.0.screened_from", "themselves"),
    ("screened from the judge", [
        {"ref": "j", "role": "judge", "staff_email": "judge@example.org"},
        {"role": "witness", "display_name": "W", "screened_from": ["j"]}],
     "participants.1.screened_from", "bench"),
    ("screened from one's interpreter", [
        {"ref": "w", "role": "witness", "display_name": "W", "screened_from": ["i"]},
        {"ref": "i", "role": "interpreter", "display_name": "I", "interprets_for": "w",
         "language": "nb"}], "participants.0.screened_from", "interpret"),
    ("the same ref twice", [{"ref": "x", "role": "party", "display_name": "P"},
                            {"ref": "x", "role": "party", "display_name": "Q"}],
     "participants.1.ref", "unique"),
    ("a guest with no name", [{"role": "party", "display_name": " "}],
     "participants.0.display_name", "name"),
]


@pytest.mark.parametrize(("what", "participants", "field", "words"), BAD,
                         ids=[case[0] for case in BAD])
def test_a_bad_reference_refuses_the_whole_booking(app, people, bench, what, participants,
                                                   field, words):
    api = Api.of(app, people.host_a.id)
    before = snapshot(app)
    response = api.call("POST", "/api/v1/appointments",
                        hearing_body(participants, observer_link=True))
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert (body["code"], body["field"]) == ("invalid", field)
    assert words.lower() in body["message"].lower()
    assert body["errors"] == {"json": {field: [body["message"]]}}
    after = snapshot(app)
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= {"audit_events", "audit_head", "api_tokens"}, changed  # the token's use
    assert court_rows(app) == {"appointments": 0, "participants": 0, "representations": 0,
                               "screenings": 0}
    assert [e.action for e in audit_events(app) if e.actor_type == "api_token"] == [
        "api_token.used"]


def test_a_disabled_account_cannot_sit(app, people, bench):
    with app.app_context():
        from portal.models import User, utcnow
        db.session.get(User, bench["panel"].id).disabled_at = utcnow()
        db.session.commit()
    api = Api.of(app, people.host_a.id)
    response = api.call("POST", "/api/v1/appointments", hearing_body(
        [{"role": "panel", "staff_email": "panel@example.org"}]))
    assert response.status_code == 422
    assert response.get_json()["field"] == "participants.0.staff_email"


def test_staff_roles_and_the_observer_link_are_for_hearings_only(app, people, bench):
    api = Api.of(app, people.host_a.id)
    consult = {**hearing_body([]), "kind": "consult", "recording_policy": "consent"}
    staff = api.call("POST", "/api/v1/appointments", {
        **consult, "participants": [{"role": "judge", "staff_email": "judge@example.org"}]})
    assert (staff.status_code, staff.get_json()["field"]) == (422, "participants.0.role")
    link = api.call("POST", "/api/v1/appointments", {**consult, "observer_link": True})
    assert (link.status_code, link.get_json()["field"]) == (422, "observer_link")
    assert court_rows(app)["appointments"] == 0
    made = api.call("POST", "/api/v1/appointments", consult).get_json()
    base = f"/api/v1/appointments/{made['id']}"
    later = api.call("POST", base + "/participants",
                     {"role": "panel", "staff_email": "panel@example.org"})
    assert (later.status_code, later.get_json()["field"]) == (422, "role")
    assert api.call("POST", base + "/observer-link").status_code == 422


@pytest.mark.parametrize("tag,expected", [("nb", "nb"), ("EN-gb", "en-GB"),
                                          ("zh-hant-tw", "zh-Hant-TW"), ("sl-rozaj", "sl-rozaj"),
                                          ("es-419", "es-419"), (" se ", "se")])
def test_language_tags(app, tag, expected):
    with app.test_request_context():
        assert language_tag(tag) == expected


@pytest.mark.parametrize("tag", ["", "e", "english", "en_GB", "en-", "-en", "en-GBR-x",
                                 "x" * 36, "en-GB\nx", "nb; drop table"])
def test_language_tags_refused(app, tag):
    with app.test_request_context(), pytest.raises(DomainError):
        language_tag(tag)


# Adding to a hearing later, by id ------------------------------------------------------------


def test_participants_added_later_refer_by_id_within_their_own_hearing(app, people, bench):
    hearing_id, made, _ = book_hearing(app, people.host_a.id, [
        Seat(R.PARTY, "Pat", ref="party"), Seat(R.WITNESS, "Wes", ref="witness")])
    other_id, other, _ = book_hearing(app, people.host_a.id, [
        Seat(R.WITNESS, "Olga", ref="witness")], title="Another case")
    api = Api.of(app, people.host_a.id)
    base = f"/api/v1/appointments/{hearing_id}/participants"
    party_id, witness_id = made["party"][0], made["witness"][0]

    counsel = api.call("POST", base, {"role": "counsel", "display_name": "Cas",
                                      "represents": [party_id]})
    assert counsel.status_code == 201
    assert counsel.get_json()["represents"] == [party_id]
    assert counsel.get_json()["invite_url"]
    before = snapshot(app)
    for body, field in (
            ({"role": "interpreter", "display_name": "Ina", "language": "nb",
              "interprets_for": other["witness"][0]}, "interprets_for"),
            ({"role": "witness", "display_name": "Wim",
              "screened_from": [other["witness"][0]]}, "screened_from"),
            ({"role": "counsel", "display_name": "Col", "represents": [witness_id]},
             "represents"),
            ({"role": "judge", "staff_email": "ghost@example.org"}, "staff_email")):
        response = api.call("POST", base, body)
        assert response.status_code == 422, body
        assert response.get_json()["field"] == field
        assert response.get_json()["message"]
    after = snapshot(app)
    assert {t for t in after if after[t] != before[t]} <= {"audit_events", "audit_head",
                                                           "api_tokens"}
    judge = api.call("POST", base, {"role": "judge", "staff_email": "judge@example.org"})
    assert judge.status_code == 201
    assert (judge.get_json()["invite_url"], judge.get_json()["staff"]) == (None, True)
    # A staff seat has no link to revoke or reissue.
    seat = judge.get_json()["id"]
    assert api.call("POST", f"{base}/{seat}/reissue").status_code == 404
    assert api.call("POST", f"{base}/{seat}/revoke").status_code == 404
    assert other_id != hearing_id


def test_screening_is_changed_later(app, people, bench):
    hearing_id, made, _ = book_hearing(app, people.host_a.id, [
        Seat(R.PARTY, "Pat", ref="p"), Seat(R.PARTY, "Quin", ref="q"),
        Seat(R.WITNESS, "Wes", ref="w", screened_from=["p"]),
        Seat(R.JUDGE, staff_email="judge@example.org", ref="j")])
    _other_id, other, _ = book_hearing(app, people.host_a.id, [Seat(R.PARTY, "Olga", ref="o")])
    api = Api.of(app, people.host_a.id)
    p, q, w, j = (made[k][0] for k in "pqwj")
    url = f"/api/v1/appointments/{hearing_id}/participants/{w}/screening"
    changed = api.call("PUT", url, {"screened_from": [q, p, q]})
    assert changed.status_code == 200
    assert changed.get_json()["screened_from"] == [p, q]
    events = audit_events(app, "screening.changed")
    assert [json.loads(e.details) for e in events] == [
        {"appointment_id": hearing_id, "added": [q], "removed": []}]
    before = snapshot(app)
    for body, status in (({"screened_from": [other["o"][0]]}, 422),
                         ({"screened_from": [w]}, 422), ({"screened_from": [j]}, 422),
                         ({"screened_from": [2**31]}, 422), ({"screened_from": "p"}, 422),
                         ({}, 422)):
        response = api.call("PUT", url, body)
        assert response.status_code == status, body
        assert response.get_json()["message"]
    elsewhere = f"/api/v1/appointments/{hearing_id}/participants/{other['o'][0]}/screening"
    assert api.call("PUT", elsewhere, {"screened_from": []}).status_code == 404
    after = snapshot(app)
    assert {t for t in after if after[t] != before[t]} <= {"audit_events", "audit_head",
                                                           "api_tokens"}
    lifted = api.call("PUT", url, {"screened_from": []})
    assert lifted.get_json()["screened_from"] == []
    assert json.loads(audit_events(app, "screening.changed")[-1].details)["removed"] == [p, q]


# The observer link -------------------------------------------------------------------------


def test_the_observer_link_on_off_and_on_again(app, people, bench):
    hearing_id, _, _ = book_hearing(app, people.host_a.id, [])
    api = Api.of(app, people.host_a.id)
    url = f"/api/v1/appointments/{hearing_id}/observer-link"
    on = api.call("POST", url)
    assert on.status_code == 201
    first = urlsplit(on.get_json()["observer_url"]).path
    visitor = app.test_client()
    page = visitor.get(first)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "getUserMedia" not in page.get_data(as_text=True)
    assert api.call("GET", f"/api/v1/appointments/{hearing_id}").get_json()[
        "observer_link_enabled"] is True
    off = api.call("DELETE", url)
    assert off.status_code == 204
    gone = visitor.get(first)
    assert gone.status_code == 410
    assert "turned off" in gone.get_data(as_text=True)
    assert api.call("DELETE", url).status_code == 204  # twice: still one event
    again = urlsplit(api.call("POST", url).get_json()["observer_url"]).path
    assert again != first
    assert visitor.get(again).status_code == 200
    assert visitor.get(first).status_code == 404  # replaced: no longer this hearing's link
    assert visitor.get("/o/not-a-real-token").status_code == 404
    actions = [e.action for e in audit_events(app) if e.action.startswith("observer_link")]
    assert actions == ["observer_link.enabled", "observer_link.disabled",
                       "observer_link.enabled"]


def observer_post(app, path: str, name: str) -> Any:
    """Open the name-only form as a browser does, then send it with its CSRF token."""
    from people import Browser

    browser = Browser(app.test_client())
    assert browser.get(path).status_code == 200
    return browser.post(path, {"display_name": name})


def test_an_observer_joins_with_a_name_only(app, people, bench):
    hearing_id, _, token = book_hearing(app, people.host_a.id, [], observer_link=True)
    path = f"/o/{token}"
    response = observer_post(app, path, "Petra Press")
    assert response.status_code == 303
    personal = response.headers["Location"]
    assert personal.startswith("/j/") and token not in personal
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert app.test_client().get(personal).status_code == 200
    with app.app_context():
        observer = db.session.scalar(select(Participant).where(
            Participant.appointment_id == hearing_id, Participant.role == R.OBSERVER))
        assert observer.display_name == "Petra Press" and observer.user_id is None
        assert observer.lobby_state is LobbyState.INVITED
    [joined] = audit_events(app, "observer.joined")
    assert json.loads(joined.details) == {"appointment_id": hearing_id}
    assert "Petra" not in (joined.details or "")
    # Without the form's CSRF token, or without a name: nothing.
    before = snapshot(app)
    assert app.test_client().post(path, data={"display_name": "Eve"}).status_code == 400
    assert observer_post(app, path, "   ").status_code == 400
    assert snapshot(app) == before


def test_observers_have_a_limit_of_their_own(app, people, bench):
    app.config["MAX_OBSERVERS"], app.config["MAX_GUESTS"] = 1, 1
    _, _, token = book_hearing(app, people.host_a.id, [Seat(R.PARTY, "Pat")],
                               observer_link=True)
    assert observer_post(app, f"/o/{token}", "First").status_code == 303
    before = snapshot(app)
    refused = observer_post(app, f"/o/{token}", "Second")
    assert refused.status_code == 409
    assert "most observers" in refused.get_data(as_text=True)
    assert snapshot(app) == before


def test_the_observer_link_follows_the_hearing(app, people, bench):
    early_id, _, early = book_hearing(app, people.host_a.id, [], observer_link=True,
                                      starts_in=timedelta(hours=5))
    assert app.test_client().get(f"/o/{early}").status_code == 403
    api = Api.of(app, people.host_a.id)
    assert api.call("POST", f"/api/v1/appointments/{early_id}/cancel").status_code == 200
    cancelled = app.test_client().get(f"/o/{early}")
    assert cancelled.status_code == 410
    assert api.call("POST", f"/api/v1/appointments/{early_id}/observer-link").status_code == 409


def test_the_observer_link_is_rate_limited(app, people, bench):
    app.config["INVITE_RATE_LIMIT"] = "3 per minute"
    client = app.test_client()
    statuses = [client.get("/o/not-a-token").status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]


# Staff who sit in a hearing ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_judge_who_is_not_the_host_sees_and_opens_the_hearing(app, people, bench,
                                                                new_browser):
    hearing_id, made, _ = book_hearing(app, people.host_a.id, [
        Seat(R.JUDGE, staff_email="judge@example.org", ref="j"),
        Seat(R.PANEL, staff_email="panel@example.org", ref="panel"),
        Seat(R.PARTY, "Pat Party", ref="p")], title="Case of the judge")
    own = book(app, people.host_b.id, title="B's own consult")
    judge = new_browser().login(bench["judge"])
    listed = judge.get("/appointments/").get_data(as_text=True)
    assert "Case of the judge" in listed and "B&#39;s own consult" not in listed
    page = judge.get(f"/appointments/{hearing_id}")
    assert page.status_code == 200
    assert "Pat Party" in page.get_data(as_text=True)
    judges_call = judge.get(f"/appointments/{hearing_id}/call")
    assert judges_call.status_code == 200
    for host_only in ('id="record"', 'id="end-call"', 'id="lobby-list"'):
        assert host_only in judges_call.get_data(as_text=True), host_only
    added = judge.post(f"/appointments/{hearing_id}/guests",
                       {"display_name": "Wes Witness", "role": "witness"}, follow_redirects=True)
    assert added.status_code == 200 and 'id="new-link"' in added.get_data(as_text=True)

    panel = new_browser().login(bench["panel"])
    assert "Case of the judge" in panel.get("/appointments/").get_data(as_text=True)
    seen = panel.get(f"/appointments/{hearing_id}").get_data(as_text=True)
    assert "Pat Party" in seen and "Add a participant" not in seen and "Stop link" not in seen
    # The panel joins as staff (no waiting room) but is offered nothing a host does.
    panels_call = panel.get(f"/appointments/{hearing_id}/call").get_data(as_text=True)
    assert 'data-role="host"' in panels_call
    for host_only in ('id="record"', 'id="end-call"', 'id="lobby-list"', "wait in the waiting"):
        assert host_only not in panels_call, host_only
    before = snapshot(app)
    for path, data in ((f"/appointments/{hearing_id}/guests", {"display_name": "X",
                                                              "role": "party"}),
                       (f"/appointments/{hearing_id}/edit", {}),
                       (f"/appointments/{hearing_id}/cancel", {}),
                       (f"/appointments/{hearing_id}/observer-link", {}),
                       (f"/appointments/{hearing_id}/guests/{made['p'][0]}/revoke", {})):
        assert panel.post(path, data).status_code == 403, path
    assert snapshot(app) == before

    clerk = new_browser().login(bench["clerk"])  # staff, but not in this hearing
    assert "Case of the judge" not in clerk.get("/appointments/").get_data(as_text=True)
    assert clerk.get(f"/appointments/{hearing_id}").status_code == 404
    assert clerk.get(f"/appointments/{hearing_id}/call").status_code == 404
    assert own


def test_staff_in_a_hearing_through_the_api(app, people, bench):
    hearing_id, _, _ = book_hearing(app, people.host_a.id, [
        Seat(R.JUDGE, staff_email="judge@example.org"),
        Seat(R.PANEL, staff_email="panel@example.org")])
    base = f"/api/v1/appointments/{hearing_id}"
    judge, panel = Api.of(app, bench["judge"].id), Api.of(app, bench["panel"].id)
    clerk = Api.of(app, bench["clerk"].id)
    assert [a["id"] for a in judge.call("GET", "/api/v1/appointments").get_json()] == [
        hearing_id]
    assert judge.call("PATCH", base, {"title": "Renamed by the judge"}).status_code == 200
    assert panel.call("GET", base).status_code == 200
    assert panel.call("GET", base + "/participants").status_code == 200
    for method, path in (("PATCH", base), ("POST", base + "/observer-link"),
                         ("POST", base + "/participants"), ("POST", base + "/cancel")):
        response = panel.call(method, path, {"title": "x"} if method == "PATCH" else
                              {"role": "party", "display_name": "X"})
        assert response.status_code == 403, path
        assert clerk.call(method, path, {"title": "x"} if method == "PATCH" else
                          {"role": "party", "display_name": "X"}).status_code == 404, path
    assert clerk.call("GET", base).status_code == 404
    assert clerk.call("GET", "/api/v1/appointments").get_json() == []


# The appointment page of a hearing ---------------------------------------------------------


def test_booking_a_hearing_on_its_page(app, people, bench, new_browser):
    hearing_id, _, _ = book_hearing(app, people.host_a.id, [])
    host = new_browser().login(people.host_a)
    url = f"/appointments/{hearing_id}"
    staff = host.post(f"{url}/guests", {"role": "clerk", "staff_email": "clerk@example.org"})
    assert staff.status_code == 302  # no link to show: post/redirect/get
    assert "Clerk Kent" in host.get(staff.headers["Location"]).get_data(as_text=True)
    party = host.post(f"{url}/guests", {"display_name": "Pat Party", "role": "party"},
                      follow_redirects=True)
    assert party.status_code == 200 and 'id="new-link"' in party.get_data(as_text=True)
    with app.app_context():
        ids = {p.display_name: p.id for p in db.session.scalars(
            select(Participant).where(Participant.appointment_id == hearing_id))}
    assert host.post(f"{url}/guests", {"display_name": "Cas Counsel", "role": "counsel",
                                       "represents": str(ids["Pat Party"])}).status_code == 302
    assert host.post(f"{url}/guests", {"display_name": "Wes Witness", "role": "witness",
                                       "screened_from": str(ids["Pat Party"])}
                     ).status_code == 302
    with app.app_context():
        ids = {p.display_name: p.id for p in db.session.scalars(
            select(Participant).where(Participant.appointment_id == hearing_id))}
    assert host.post(f"{url}/guests", {"display_name": "Ina Tolk", "role": "interpreter",
                                       "interprets_for": str(ids["Wes Witness"]),
                                       "language": "uk"}).status_code == 302
    page = host.get(url).get_data(as_text=True)
    assert "represents Pat Party" in page
    assert "interprets for Wes Witness (uk)" in page
    assert "screened from Pat Party" in page
    assert "Clerk Kent" in page and "staff account" in page

    # Mistakes are shown next to their field, and nothing is written.
    before = snapshot(app)
    for data, words in (
            ({"role": "judge", "staff_email": "ghost@example.org"}, "No active staff account"),
            ({"display_name": "Ivo", "role": "interpreter",
              "interprets_for": str(ids["Wes Witness"]), "language": "Ukrainian!"},
             "language tag"),
            ({"display_name": "Ivo", "role": "interpreter",
              "interprets_for": str(ids["Wes Witness"])}, "Give the language"),
            ({"display_name": "Col", "role": "counsel",
              "represents": str(ids["Wes Witness"])}, "not a valid choice")):
        response = host.post(f"{url}/guests", data)
        assert response.status_code in (400, 422), data
        assert words in response.get_data(as_text=True), data
    assert snapshot(app) == before

    # Screening changed on the page, then the observer link on (shown once) and off.
    screened = host.post(f"{url}/screening", {"participant": str(ids["Wes Witness"]),
                                              "screened_from": [str(ids["Pat Party"]),
                                                                str(ids["Cas Counsel"])]})
    assert screened.status_code == 302
    assert "screened from Pat Party, Cas Counsel" in host.get(url).get_data(as_text=True)
    bad = host.post(f"{url}/screening", {"participant": str(ids["Wes Witness"]),
                                         "screened_from": str(ids["Wes Witness"])})
    assert bad.status_code == 422 and "themselves" in bad.get_data(as_text=True)
    on = host.post(f"{url}/observer-link", follow_redirects=True)
    assert on.status_code == 200
    text = on.get_data(as_text=True)
    assert 'id="new-observer-link"' in text and "/o/" in text
    link = text.split('id="new-observer-link"')[1].split('value="')[1].split('"')[0]
    assert "/o/" not in host.get(url).get_data(as_text=True)  # shown once
    assert app.test_client().get(urlsplit(link).path).status_code == 200
    off = host.post(f"{url}/observer-link/off")
    assert off.status_code == 302
    assert app.test_client().get(urlsplit(link).path).status_code == 410


def test_a_consults_page_offers_no_court_fields(app, people, new_browser):
    consult = book(app, people.host_a.id)
    page = new_browser().login(people.host_a).get(f"/appointments/{consult}").get_data(
        as_text=True)
    assert "staff_email" not in page and "observer-link" not in page
    assert 'value="judge"' not in page
