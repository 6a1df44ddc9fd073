"""The layering of docs/architecture.md, checked on the source: domain code never reaches into
the socket layer, packages import each other without cycles, and handlers and views leave the
transaction to the guard and database.commit_request."""

from __future__ import annotations

import ast
from pathlib import Path

from portal import PACKAGE_DIR

#: The socket layer's own modules, the only ones that may import flask_socketio, python-socketio
#: or portal.call (create_app and the server start it; the extensions create it).
SOCKET_FACING = {"portal", "portal.extensions", "portal.serve", "portal.call",
                 "portal.call.events", "portal.call.recording_events", "portal.call.guard",
                 "portal.call.notify", "portal.call.queue", "portal.call.hearing_events",
                 "portal.call.court_events"}
SOCKET_MODULES = ("flask_socketio", "socketio", "engineio", "portal.call")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR.parent)
        if relative.parts[1] in ("migrations", "templates"):
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every module name imported anywhere in the file (in functions too), with the names
    taken from it: `from a import b` gives "a" and "a.b"."""
    names: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _is_socket_code(imported: str) -> bool:
    return imported == "portal.extensions.socketio" or any(
        imported == m or imported.startswith(m + ".") for m in SOCKET_MODULES)


def test_only_the_socket_layer_imports_socket_code() -> None:
    offenders = {name: sorted(i for i in _imports(name, path) if _is_socket_code(i))
                 for name, path in _modules().items() if name not in SOCKET_FACING}
    offenders = {name: found for name, found in offenders.items() if found}
    assert offenders == {}, "domain code must announce (portal.signals), not emit"


def test_the_domain_modules_named_in_the_design_are_checked() -> None:
    """The rule above covers what it must: services, models, the recording engine and store."""
    modules = _modules()
    for name in ("portal.call.services", "portal.appointments.services",
                 "portal.recording.services", "portal.recording.actions",
                 "portal.recording.manager", "portal.recording.sealing",
                 "portal.recording.endpoint", "portal.recording.store", "portal.presence",
                 "portal.models.appointment", "portal.accounts.views"):
        assert name in modules and name not in SOCKET_FACING, name


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_packages_import_each_other_without_cycles() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name == "portal":  # create_app puts everything together
            continue
        for imported in _imports(name, path):
            target = _package(imported)
            if (imported.startswith("portal.") and target != _package(name)
                    and (f"portal.{target}" in modules)):
                graph.setdefault(_package(name), set()).add(target)

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == start:
                return [*path, nxt]
            if nxt not in path:
                found = cycle_from(start, [*path, nxt])
                if found:
                    return found
        return None

    cycles = [c for c in (cycle_from(p, [p]) for p in sorted(graph)) if c]
    assert cycles == [], " / ".join(" -> ".join(c) for c in cycles)


def test_handlers_and_views_leave_the_transaction_to_one_place() -> None:
    """The guard commits each socket event; database.commit_request each request."""
    modules = _modules()
    handlers = [n for n in modules if n.endswith(".views") or n.endswith("events")]
    assert "portal.call.events" in handlers and "portal.appointments.views" in handlers
    for name in handlers:
        source = modules[name].read_text(encoding="utf-8")
        assert "session.commit(" not in source, f"{name} commits by hand"
        assert "session.rollback(" not in source, f"{name} rolls back by hand"
