"""Operator commands: `flask --app app janus config DIR` and `flask --app app janus run`."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import sys
from dataclasses import replace
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from portal import private
from portal.hearing import config

janus_cli = AppGroup("janus", help="The hearings' media server (Janus): its configuration.")
INSTALL_HINT = ("Janus is not installed: `apt-get install janus` (Debian), then run this again. "
                "Consults work without it; hearings need it (docs/operations.md, \"Hearings\").")


def _settings(url: str | None, interface: str | None, session_timeout: int | None,
              allow_from: str | None = None) -> config.JanusSettings:
    settings = config.settings_for(current_app, url)
    if allow_from:
        settings = replace(settings, allow_from=tuple(
            a.strip() for a in allow_from.split(",") if a.strip()))
    if interface:
        settings = replace(settings, interface=interface, ice_enforce_list=interface)
    if session_timeout is not None:
        settings = replace(settings, session_timeout=session_timeout)
    try:
        settings.check()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def _write(directory: Path, settings: config.JanusSettings) -> None:
    try:
        config.write_config(directory, settings)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _readable_by(directory: Path, group: str) -> None:
    """The configuration (it holds secrets) readable by one group besides its owner."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise click.ClickException(f"no group {group!r}") from exc
    for path in [directory, *directory.rglob("*")]:
        if path.is_symlink():
            continue
        info = path.stat()
        if info.st_gid != gid:
            os.chown(path, -1, gid)
        # A setgid folder (install -d -m 2750) keeps giving new files its group.
        path.chmod(0o750 | (info.st_mode & stat.S_ISGID) if path.is_dir() else 0o640)


URL_HELP = "The instance's API address (default: the first of PORTAL_JANUS_URLS)."
INTERFACE_HELP = "The address Janus offers media on (default: Janus picks)."


@janus_cli.command("config")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--url", help=URL_HELP)
@click.option("--interface", help=INTERFACE_HELP)
@click.option("--session-timeout", type=int, help="Janus's session timeout, seconds (60).")
@click.option("--group", help="A group that may read it (Janus's own user's group, e.g. janus).")
@click.option("--allow-from", help="Comma-separated addresses that may use the API (default: "
              "PORTAL_JANUS_ALLOW_FROM, else 127.0.0.1; required for a private address).")
def write(directory: Path, url: str | None, interface: str | None,
          session_timeout: int | None, group: str | None, allow_from: str | None) -> None:
    """Write a locked-down Janus configuration into DIRECTORY, with this portal's API secret
    and admin key: run Janus with `janus -F DIRECTORY`."""
    settings = _settings(url, interface, session_timeout, allow_from)
    _write(directory, settings)
    if group:
        _readable_by(directory, group)
    click.echo(f"wrote Janus's configuration for {settings.url} into {directory.resolve()}")
    click.echo(f"run it with: janus -F {directory.resolve()}")
    if settings.url not in config.urls(current_app):
        click.echo(f"and tell the portal: PORTAL_JANUS_URLS={settings.url}")


@janus_cli.command("run")
@click.option("--url", help=URL_HELP)
@click.option("--interface", help=INTERFACE_HELP)
@click.option("--directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the configuration (default: instance/janus).")
def run(url: str | None, interface: str | None, directory: Path | None) -> None:
    """Run Janus in the foreground with a fresh configuration (for one machine; production
    runs it under systemd, docs/operations.md)."""
    binary = shutil.which("janus")
    if binary is None:
        raise click.ClickException(INSTALL_HINT)
    directory = private.folder(directory or Path(current_app.instance_path) / "janus")
    settings = _settings(url, interface, None)
    _write(directory, settings)
    click.echo(f"Janus for hearings on {settings.url} (configuration in {directory})", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # The same process (stop it by its PID), fixed arguments: no shell is wanted.
    os.execv(binary, [binary, "-F", str(directory), "-o"])  # noqa: S606
