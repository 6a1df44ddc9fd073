"""A wheel works without the checkout: built from this working tree, installed into a venv that
holds the runtime lock and nothing else (the new user's, from test_fresh_clone.py), it migrates
a database and serves the sign-in page from a folder outside the repository. Templates,
migrations, static files and translations ship inside `portal`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest
from live import CSRF_RE, free_port

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 900
#: Not part of a build: a copy without them is what a clean checkout would build from.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "instance", "*.egg-info",
                                    "__pycache__", ".*_cache", ".hypothesis", "node_modules")


def run(*args: str | Path, timeout: float = 120, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout, cwd=cwd, env=env)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def runtime_venv(fresh_clone: Path, tmp_path: Path) -> Path:
    """A venv holding the runtime lock and nothing else: the one scripts/start made in the new
    user's clone (tests/e2e/test_fresh_clone.py, run before this one), or a new one."""
    made = fresh_clone / ".venv"
    stamp = made / ".installed"
    if stamp.exists() and stamp.read_text().startswith("runtime ") and (
            fresh_clone / "requirements" / "runtime.txt").read_bytes() == (
            ROOT / "requirements" / "runtime.txt").read_bytes():
        return made
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    run(env_dir / "bin" / "python", "-m", "pip", "install", "--quiet", "--require-hashes",
        "--no-deps", "-r", ROOT / "requirements" / "runtime.txt", timeout=INSTALL_TIMEOUT)
    return env_dir


def test_the_wheel_migrates_and_serves_outside_the_checkout(fresh_clone: Path,
                                                            tmp_path: Path) -> None:
    wheels, elsewhere = tmp_path / "wheels", tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)

    # A venv with the locked dependencies; the wheel is built with its locked setuptools.
    env_dir = runtime_venv(fresh_clone, tmp_path)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "-w", wheels, source, timeout=300)
    (wheel,) = wheels.glob("samtale-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for folder in ("templates", "migrations"):
        shipped = {n for n in names if n.startswith(f"portal/{folder}/")}
        in_tree = {f"portal/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
                   for p in (ROOT / folder).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
        assert in_tree and in_tree <= shipped, sorted(in_tree - shipped)
    assert {"portal/migrations/env.py", "portal/migrations/script.py.mako",
            "portal/migrations/alembic.ini"} <= names
    assert "portal/static/css/portal.css" in names
    assert "portal/translations/nb/LC_MESSAGES/messages.mo" in names
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", wheel, timeout=300)

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PORTAL_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    port = free_port()
    env.update({
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
        "PORTAL_SECRET_KEY": "wheel-test-secret-key-0123456789abcdef",
        "PORTAL_RECORDINGS_DIR": str(tmp_path / "instance" / "recordings"),
        "PORTAL_RECORDING_KEYS_DIR": str(tmp_path / "instance" / "keys"),
        "PORTAL_HOST": "127.0.0.1",
        "PORTAL_PORT": str(port),
    })
    (tmp_path / "instance" / "keys").mkdir(parents=True)
    # The package comes from the venv, not from the checkout.
    where = run(python, "-c", "import portal; print(portal.__file__)", cwd=elsewhere, env=env)
    assert Path(where.stdout.strip()).is_relative_to(env_dir / "lib"), where.stdout
    assert not Path(where.stdout.strip()).is_relative_to(ROOT)

    migrated = run(env_dir / "bin" / "flask", "--app", "portal", "db", "upgrade",
                   cwd=elsewhere, env=env)
    assert "0003" in migrated.stderr + migrated.stdout  # up to the newest revision
    tables = run(python, "-c", "import sqlite3, sys; print(sorted(r[0] for r in sqlite3.connect("
                 "sys.argv[1]).execute(\"select name from sqlite_master where type='table'\")))",
                 tmp_path / "x.sqlite3", cwd=elsewhere)
    assert "'users'" in tables.stdout and "'alembic_version'" in tables.stdout, tables.stdout

    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen([python, "-m", "portal.serve"], cwd=elsewhere, env=env,
                                  stdin=subprocess.DEVNULL, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, page = get(f"http://127.0.0.1:{port}/login")
                break
            except (ConnectionError, urllib.error.URLError):
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        assert status == 200, page
        assert "<h1>Sign in</h1>" in page and 'name="password"' in page and CSRF_RE.search(page)
        status, css = get(f"http://127.0.0.1:{port}/static/css/portal.css")
        assert status == 200 and css.strip()
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0, log.read_text()
    finally:
        if server.poll() is None:  # a failed test: stop what it started
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    assert "Traceback" not in log.read_text(), log.read_text()
