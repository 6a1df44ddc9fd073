"""Operator commands: `flask --app app users|tokens|audit|demo|janus ...`."""

from __future__ import annotations

import sys
from datetime import timedelta

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from portal.accounts import services as accounts
from portal.appointments import services as appointments
from portal.audit import services as audit
from portal.errors import DomainError
from portal.extensions import db
from portal.links import invite_url
from portal.models import (
    ApiToken,
    Appointment,
    Kind,
    ParticipantRole,
    RecordingPolicy,
    Role,
    Status,
    User,
    utcnow,
)

users_cli = AppGroup("users", help="Staff accounts.")
tokens_cli = AppGroup("tokens", help="API tokens for record systems.")
audit_cli = AppGroup("audit", help="The audit trail.")

DEMO_TITLE = "Demo consult"
DEMO_HEARING_TITLE = "Demo hearing"
#: The demo hearing's parties besides the judge (the demo host): six people in one call.
DEMO_HEARING_GUESTS = (("Demo Counsel", ParticipantRole.COUNSEL),
                       ("Demo Party", ParticipantRole.PARTY),
                       ("Demo Witness", ParticipantRole.WITNESS),
                       ("Demo Interpreter", ParticipantRole.INTERPRETER),
                       ("Demo Observer", ParticipantRole.OBSERVER))
DEMO_ACCOUNTS = (
    ("admin@samtale.test", "Demo Administrator", Role.ADMIN),
    ("host@samtale.test", "Dr. Demo Host", Role.HOST),
)


def _user_or_exit(email: str) -> User:
    user = accounts.user_by_email(email)
    if user is None:
        raise click.ClickException(f"no account with e-mail {email}")
    return user


def _commit_or_exit(err: DomainError | None = None) -> None:
    if err is not None:
        db.session.rollback()
        raise click.ClickException(err.message)
    db.session.commit()


@users_cli.command("create")
@click.argument("email")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.HOST.value)
def create_user(email: str, name: str, role: str) -> None:
    """Create a staff account and print its one-time password."""
    try:
        user, one_time = accounts.create_user(email, name, Role(role))
    except DomainError as err:
        _commit_or_exit(err)
        return
    _commit_or_exit()
    click.echo(f"created {user.role.value} {user.email}; one-time password: {one_time}")


@users_cli.command("list")
def list_users() -> None:
    """List staff accounts: id, e-mail, role, state, two-step sign-in (on, off, or missing:
    required but not set up yet), name."""
    for user in accounts.list_users():
        state = "disabled" if user.is_disabled else "enabled"
        mfa = f"mfa:{accounts.second_factor_state(user)}"
        click.echo(f"{user.id}\t{user.email}\t{user.role.value}\t{state}\t{mfa}\t{user.name}")


@users_cli.command("reset-password")
@click.argument("email")
def reset_password(email: str) -> None:
    """Give an account a new one-time password (ends its sessions)."""
    user = _user_or_exit(email)
    one_time = accounts.reset_password(user)
    _commit_or_exit()
    click.echo(f"one-time password for {user.email}: {one_time}")


@users_cli.command("reset-mfa")
@click.argument("email")
def reset_mfa(email: str) -> None:
    """Turn an account's two-step sign-in off (a lost phone); its sessions end. Where it is
    required, the user sets it up again at the next sign-in."""
    user = _user_or_exit(email)
    accounts.reset_mfa(user)
    _commit_or_exit()
    click.echo(f"two-step sign-in reset for {user.email}; they set it up again at sign-in")


@users_cli.command("disable")
@click.argument("email")
def disable(email: str) -> None:
    """Disable an account: no sign-in, no API tokens, sessions end."""
    try:
        accounts.set_disabled(_user_or_exit(email), True)
    except DomainError as err:
        _commit_or_exit(err)
    _commit_or_exit()
    click.echo(f"disabled {email}")


@users_cli.command("enable")
@click.argument("email")
def enable(email: str) -> None:
    """Enable a disabled account."""
    accounts.set_disabled(_user_or_exit(email), False)
    _commit_or_exit()
    click.echo(f"enabled {email}")


@tokens_cli.command("issue")
@click.argument("email")
@click.argument("name")
def issue_token(email: str, name: str) -> None:
    """Issue an API token acting as this host; printed once."""
    try:
        token, plain = accounts.issue_api_token(_user_or_exit(email), name)
    except DomainError as err:
        _commit_or_exit(err)
        return
    _commit_or_exit()
    click.echo(f"token {token.id} for {email}: {plain}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def revoke_token(token_id: int) -> None:
    """Revoke an API token by its id."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"no token {token_id}")
    accounts.revoke_api_token(token)
    _commit_or_exit()
    click.echo(f"revoked token {token_id}")


@audit_cli.command("verify")
def verify_audit() -> None:
    """Check the hash chain; exit 1 and name the first broken row if it fails."""
    verdict = audit.verify()
    if verdict.ok:
        click.echo(f"OK: {verdict.checked} events, head {verdict.head_digest}")
        return
    click.echo(f"BROKEN: {verdict.reason} (first bad row: seq {verdict.bad_seq}; "
               f"{verdict.checked} rows before it are intact)", err=True)
    sys.exit(1)


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Create the demo administrator and host if missing (passwords printed once), and give
    the demo host a consult starting soon with a fresh guest link, every time it runs."""
    host = None
    for email, name, role in DEMO_ACCOUNTS:
        user = accounts.user_by_email(email)
        if user is not None:
            click.echo(f"demo {role.value}: {email}  (forgot the password? {_flask()} --app app "
                       f"users reset-password {email})")
        else:
            user, one_time = accounts.create_user(email, name, role)
            user.must_change_password = False  # a demo account; real ones choose their own
            click.echo(f"demo {role.value}: {email}  password: {one_time}  (shown once)")
        if role is Role.HOST:
            host = user
    assert host is not None
    consult, links = _demo_appointment(host, DEMO_TITLE, Kind.CONSULT, RecordingPolicy.CONSENT,
                                       (("Demo Patient", ParticipantRole.PATIENT),))
    hearing, hearing_links = _demo_appointment(
        host, DEMO_HEARING_TITLE, Kind.HEARING, RecordingPolicy.NOTICE, DEMO_HEARING_GUESTS)
    db.session.commit()
    base = invite_url("x").rsplit("/j/", 1)[0]
    click.echo(f"demo consult: sign in as the host and open {base}/appointments/"
               f"{consult.id}/call")
    click.echo(f"demo guest link (open it in another browser or a private window): {links[0][1]}")
    click.echo(f"demo hearing (through the Janus media server): the host opens {base}/"
               f"appointments/{hearing.id}/call; its parties' links (each in a private window "
               "of its own):")
    for name, link in hearing_links:
        click.echo(f"  {name}: {link}")


def _flask() -> str:
    """The flask command as it was typed (scripts/start: .venv/bin/flask), for a hint to copy."""
    typed = sys.argv[0] if sys.argv else ""
    return typed if typed.endswith("flask") else "flask"


def _demo_appointment(host: User, title: str, kind: Kind, policy: RecordingPolicy,
                      guests: tuple[tuple[str, ParticipantRole], ...],
                      ) -> tuple[Appointment, list[tuple[str, str]]]:
    """The demo host's open appointment of this title (or a new one, starting in ten minutes),
    and a new link for each of its guests."""
    now = utcnow()
    for appointment in appointments.for_host(host):
        if (appointment.title == title and appointment.ends_at > now
                and appointment.status in (Status.SCHEDULED, Status.LIVE)):
            return appointment, [(guest.display_name, invite_url(appointments.reissue_invite(
                guest))) for guest in appointment.guests]
    appointment = appointments.book(host, kind=kind, title=title,
                                    starts_at=now + timedelta(minutes=10), duration_minutes=60,
                                    recording_policy=policy)
    links = []
    for name, role in guests:
        _guest, token = appointments.add_guest(appointment, display_name=name, role=role)
        links.append((name, invite_url(token)))
    return appointment, links


def init_app(app: Flask) -> None:
    from portal.hearing.cli import janus_cli
    from portal.recording import cli as recording_cli

    for command in (users_cli, tokens_cli, audit_cli, demo, janus_cli):
        app.cli.add_command(command)
    recording_cli.init_app(app)
