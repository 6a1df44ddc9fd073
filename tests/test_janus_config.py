"""Janus's configuration as the portal writes it (portal/hearing/config.py) and the commands
that write and run it; then, against a real Janus running it, that it is locked down: the API
wants the secret, rooms and forwarding want the admin key, VideoRoom is the only plugin, and
Janus listens on the configured address alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import websocket
from flask import Flask
from janus import JANUS, JanusProcess, free_port, fresh_settings, missing_janus
from netns import Namespace

from portal import PROJECT_ROOT
from portal.hearing import config
from portal.hearing.config import JanusSettings, room_secret, write_config
from portal.hearing.janus import JanusClient, JanusError


def settings(**changes: Any) -> JanusSettings:
    values: dict[str, Any] = {"api_secret": "api-secret", "admin_key": "admin-key", **changes}
    return JanusSettings(**values)


def test_the_configuration_loads_videoroom_and_websockets_alone(tmp_path: Path) -> None:
    folder = tmp_path / "janus"
    write_config(folder, settings(url="ws://127.0.0.1:8300", rtp_range=(30000, 30999)))
    core = (folder / "janus.jcfg").read_text()
    assert 'api_secret = "api-secret"' in core and "janusoverlord" not in core
    assert "reclaim_session_timeout = 0" in core and 'rtp_port_range = "30000-30999"' in core
    assert "broadcast = false" in core and "interface" not in core
    assert [p.name for p in (folder / "plugins").iterdir()] == ["libjanus_videoroom.so"]
    assert [p.name for p in (folder / "transports").iterdir()] == ["libjanus_websockets.so"]
    assert not list((folder / "events").iterdir()) and not list((folder / "loggers").iterdir())
    ws = (folder / "janus.transport.websockets.jcfg").read_text()
    for line in ('ws_ip = "127.0.0.1"', "ws_port = 8300", 'ws_acl = "127.0.0.1"', "wss = false",
                 "admin_ws = false", "admin_wss = false"):
        assert line in ws
    room = (folder / "janus.plugin.videoroom.jcfg").read_text()
    assert 'admin_key = "admin-key"' in room and "lock_rtp_forward = true" in room
    assert "room-" not in room  # no demo room with a well-known secret
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("janus.jcfg", "janus.transport.websockets.jcfg", "janus.plugin.videoroom.jcfg"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


def test_writing_again_replaces_what_was_there(tmp_path: Path) -> None:
    write_config(tmp_path, settings())
    (tmp_path / "plugins" / "libjanus_echotest.so").symlink_to("/nonexistent")
    write_config(tmp_path, settings(api_secret="new-secret", interface="127.0.0.2",
                                    ice_enforce_list="127.0.0.2"))
    assert [p.name for p in (tmp_path / "plugins").iterdir()] == ["libjanus_videoroom.so"]
    core = (tmp_path / "janus.jcfg").read_text()
    assert 'api_secret = "new-secret"' in core and 'interface = "127.0.0.2"' in core
    assert 'ice_enforce_list = "127.0.0.2"' in core
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(("changes", "why"), [
    ({"url": "wss://127.0.0.1:8989"}, "ws://ADDRESS:PORT"),
    ({"url": "ws://127.0.0.1:8188/janus"}, "ws://ADDRESS:PORT"),
    ({"url": "ws://janus.example.org:8188"}, "IPv4 address"),
    ({"url": "ws://[::1]:8188"}, "IPv4 address"),
    ({"url": "ws://8.8.8.8:8188"}, "loopback or a private network"),
    ({"url": "ws://0.0.0.0:8188"}, "loopback or a private network"),  # every interface
    ({"url": "ws://169.254.1.1:8188", "allow_from": ("169.254.1.2",)}, "private network"),
    ({"url": "ws://10.20.0.5:8188"}, "allow-from"),
    ({"url": "ws://10.20.0.5:8188", "allow_from": ("portal.lan",)}, "IPv4 address"),
    ({"api_secret": ""}, "api_secret"),
    ({"admin_key": 'a"b'}, "letters, digits"),
    ({"interface": "127.0.0.2\nx"}, "letters, digits"),
    ({"rtp_range": (40000, 20000)}, "media port range"),
])
def test_unsafe_settings_are_refused(tmp_path: Path, changes: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        write_config(tmp_path, settings(**changes))
    assert not (tmp_path / "janus.jcfg").exists()


def test_a_private_address_is_allowed_to_the_named_portals(tmp_path: Path) -> None:
    write_config(tmp_path, settings(url="ws://10.20.0.5:8188",
                                    allow_from=("10.20.0.2", "10.20.0.3")))
    ws = (tmp_path / "janus.transport.websockets.jcfg").read_text()
    assert 'ws_ip = "10.20.0.5"' in ws and 'ws_acl = "10.20.0.2,10.20.0.3"' in ws


def test_room_secrets_are_derived_from_the_secret_key(app: Flask) -> None:
    secret = room_secret(app, 7)
    assert secret == room_secret("test-secret-key", 7) and len(secret) == 64
    assert secret != room_secret(app, 8) and secret != room_secret("another-key", 7)


def test_the_secrets_come_from_the_settings_or_are_made_once_in_instance(
        app: Flask, tmp_path: Path) -> None:
    app.instance_path = str(tmp_path)  # not the checkout's instance/
    made = config.settings_for(app)
    assert made.url == "ws://127.0.0.1:8188" and made.rtp_range == (20000, 40000)
    stored = Path(app.instance_path) / "janus_api_secret"
    assert stored.read_text().strip() == made.api_secret
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert config.settings_for(app).admin_key == made.admin_key  # the same next time
    app.config.update(JANUS_URLS=["ws://127.0.0.1:9000"], JANUS_API_SECRET="from-env",
                      JANUS_ADMIN_KEY="key-from-env", JANUS_RTP_PORTS="41000-41999")
    assert config.settings_for(app) == JanusSettings(
        api_secret="from-env", admin_key="key-from-env", url="ws://127.0.0.1:9000",
        rtp_range=(41000, 41999))


def test_janus_config_writes_the_portals_configuration(app: Flask, tmp_path: Path) -> None:
    app.config.update(JANUS_API_SECRET="cli-secret", JANUS_ADMIN_KEY="cli-key")
    result = app.test_cli_runner().invoke(args=[
        "janus", "config", str(tmp_path / "conf"), "--url", "ws://127.0.0.1:8400",
        "--interface", "127.0.0.2", "--session-timeout", "30", "--group", "root"])
    assert result.exit_code == 0, result.output
    assert "PORTAL_JANUS_URLS=ws://127.0.0.1:8400" in result.output
    core = (tmp_path / "conf" / "janus.jcfg").read_text()
    assert 'api_secret = "cli-secret"' in core and "session_timeout = 30" in core
    assert stat.S_IMODE((tmp_path / "conf" / "janus.jcfg").stat().st_mode) == 0o640
    refused = app.test_cli_runner().invoke(args=["janus", "config", str(tmp_path / "no"),
                                                 "--url", "ws://8.8.8.8:1"])
    assert refused.exit_code != 0 and "loopback or a private network" in refused.output
    private = app.test_cli_runner().invoke(args=[
        "janus", "config", str(tmp_path / "lan"), "--url", "ws://10.1.2.3:8188",
        "--allow-from", "10.1.2.4, 10.1.2.5"])
    assert private.exit_code == 0, private.output
    assert 'ws_acl = "10.1.2.4,10.1.2.5"' in (
        tmp_path / "lan" / "janus.transport.websockets.jcfg").read_text()


def test_without_janus_the_command_and_the_tests_say_how_to_install_it(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    import janus as janus_helpers

    from portal.hearing import cli

    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    result = app.test_cli_runner().invoke(args=["janus", "run"])
    assert result.exit_code != 0 and "apt-get install janus" in result.output
    assert "Consults work without it" in result.output
    monkeypatch.setattr(janus_helpers, "JANUS", "/nonexistent/janus")
    why = janus_helpers.missing_janus()
    assert why is not None and "apt-get install janus" in why


# --- a real Janus with this configuration ---------------------------------------------------

def raw(janus: JanusProcess, message: dict[str, Any]) -> dict[str, Any]:
    """One request on a WebSocket of its own, without the client's help."""
    with janus.namespace.entered():
        ws = websocket.create_connection(janus.url, subprotocols=["janus-protocol"], timeout=5)
    try:
        ws.send(json.dumps({"transaction": "t", **message}))
        answer: dict[str, Any] = json.loads(ws.recv())
        return answer
    finally:
        ws.close()


@pytest.mark.webrtc
def test_the_api_refuses_requests_without_the_secret(janus: JanusProcess) -> None:
    for message in ({"janus": "create"}, {"janus": "create", "apisecret": "wrong"}):
        answer = raw(janus, message)
        assert (answer["janus"], answer["error"]["code"]) == ("error", 403), answer
    assert raw(janus, {"janus": "create", "apisecret": janus.api_secret})["janus"] == "success"


@pytest.mark.webrtc
def test_the_api_refuses_a_connection_from_an_address_not_allowed(janus: JanusProcess) -> None:
    """ws_acl: 127.0.0.1 only. From Janus's own media address (127.0.0.2) the socket opens and
    Janus closes it at once, before any request."""
    with janus.namespace.entered():
        sock = socket.create_connection(("127.0.0.1", janus.settings.port), timeout=5,
                                        source_address=("127.0.0.2", 0))
        with pytest.raises((websocket.WebSocketException, OSError)):
            ws = websocket.create_connection(janus.url, subprotocols=["janus-protocol"],
                                             timeout=5, socket=sock)
            ws.send(json.dumps({"janus": "create", "transaction": "t",
                                "apisecret": janus.api_secret}))
            ws.recv()
        sock.close()
    assert "unauthorized to connect" in janus.log.read_text()


@pytest.mark.webrtc
def test_videoroom_and_websockets_are_all_that_janus_loaded(janus: JanusProcess) -> None:
    info = raw(janus, {"janus": "info"})  # Janus answers info without the secret
    assert set(info["plugins"]) == {"janus.plugin.videoroom"}
    assert set(info["transports"]) == {"janus.transport.websockets"}
    assert info["events"] == {} and info["loggers"] == {}
    assert info["api_secret"] is True and info["session-timeout"] == 60
    portal = janus.client()
    for plugin in ("janus.plugin.echotest", "janus.plugin.streaming", "janus.plugin.audiobridge",
                   "janus.plugin.textroom", "janus.plugin.recordplay", "janus.plugin.sip"):
        with pytest.raises(JanusError) as refused:
            portal.attach(plugin)
        assert refused.value.code == 460, plugin  # JANUS_ERROR_PLUGIN_NOT_FOUND


@pytest.mark.webrtc
def test_rooms_and_forwarding_need_the_admin_key(janus: JanusProcess) -> None:
    portal = janus.client()
    handle = portal.attach()
    for body, code in (({"request": "create", "room": 301}, 429),
                       ({"request": "create", "room": 301, "admin_key": "wrong"}, 433),
                       ({"request": "rtp_forward", "room": 301, "publisher_id": 1,
                         "host": "127.0.0.1", "audio_port": 5002}, 429)):
        with pytest.raises(JanusError) as refused:
            portal.request(handle, body)
        assert refused.value.code == code, body
    assert portal.request(handle, {"request": "create", "room": 301,
                                   "admin_key": janus.admin_key})["videoroom"] == "created"
    portal.request(handle, {"request": "destroy", "room": 301})


@pytest.mark.webrtc
def test_janus_listens_on_the_configured_address_alone(janus: JanusProcess) -> None:
    with janus.namespace.entered():
        listed = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True,
                                check=True).stdout
    mine = [line.split() for line in listed.splitlines() if f"pid={janus.pid}," in line]
    assert [(row[0], row[4]) for row in mine] == [("tcp", f"127.0.0.1:{janus.settings.port}")]


@pytest.mark.webrtc
def test_janus_run_serves_the_portals_configuration(tmp_path: Path,
                                                    media_namespace: Namespace) -> None:
    """`flask --app app janus run`, as scripts/start runs it: Janus in the same process."""
    why = missing_janus()
    if why:
        pytest.fail(why, pytrace=False)
    wanted = fresh_settings(free_port(media_namespace))
    env = {**os.environ, "PORTAL_JANUS_URLS": wanted.url,
           "PORTAL_JANUS_API_SECRET": wanted.api_secret,
           "PORTAL_JANUS_ADMIN_KEY": wanted.admin_key, "PORTAL_SECRET_KEY": "x" * 32,
           "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "PYTHONPATH": str(PROJECT_ROOT)}
    with media_namespace.entered(), (tmp_path / "stderr").open("wb") as stderr:
        janus = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "janus", "run", "--interface",
             "127.0.0.2", "--directory", str(tmp_path / "janus")],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            client = JanusClient(wanted.url, wanted.api_secret, timeout=2)
            deadline = time.monotonic() + 15
            while True:
                try:
                    client.connect()
                    break
                except JanusError:
                    assert janus.poll() is None, (tmp_path / "stderr").read_text()
                    assert time.monotonic() < deadline, "Janus did not start"
                    time.sleep(0.1)
                    client = JanusClient(wanted.url, wanted.api_secret, timeout=2)
            assert client.attach() > 0
            client.close()
            assert Path(f"/proc/{janus.pid}/exe").resolve() == Path(JANUS).resolve()
        finally:
            janus.send_signal(signal.SIGTERM)
            janus.wait(timeout=10)


@pytest.mark.webrtc
def test_janus_runs_as_a_user_of_its_own_with_a_configuration_only_its_group_reads(
        app: Flask, media_namespace: Namespace) -> None:
    """As the systemd unit runs it (deploy/samtale-janus.service): here nobody:nogroup, which
    reads the configuration through `--group` alone, and may write nothing of its own."""
    why = missing_janus()
    if why:
        pytest.fail(why, pytrace=False)
    wanted = fresh_settings(free_port(media_namespace))
    app.config.update(JANUS_API_SECRET=wanted.api_secret, JANUS_ADMIN_KEY=wanted.admin_key)
    with tempfile.TemporaryDirectory(prefix="samtale-janus-") as top:
        os.chmod(top, 0o711)  # noqa: S103 (pytest's tmp_path is root's alone: nobody may pass)
        folder = Path(top) / "conf"
        result = app.test_cli_runner().invoke(args=[
            "janus", "config", str(folder), "--url", wanted.url, "--interface", "127.0.0.2",
            "--group", "nogroup"])
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE((folder / "janus.jcfg").stat().st_mode) == 0o640
        with media_namespace.entered(), (Path(top) / "log").open("wb") as log:
            janus = subprocess.Popen(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", JANUS,
                 "-F", str(folder), "-o"], stdout=log, stderr=subprocess.STDOUT)
            try:
                client = JanusClient(wanted.url, wanted.api_secret, timeout=2)
                deadline = time.monotonic() + 10
                while True:
                    try:
                        client.connect()
                        break
                    except JanusError:
                        assert janus.poll() is None, (Path(top) / "log").read_text()
                        assert time.monotonic() < deadline, (Path(top) / "log").read_text()
                        time.sleep(0.1)
                        client = JanusClient(wanted.url, wanted.api_secret, timeout=2)
                assert client.attach() > 0
                client.close()
                status = Path(f"/proc/{janus.pid}/status").read_text().splitlines()
                uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
                assert set(uids) == {"65534"}
            finally:
                janus.send_signal(signal.SIGTERM)
                janus.wait(timeout=10)
