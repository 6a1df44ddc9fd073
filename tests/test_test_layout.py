"""How the tests share code: fixtures live in conftest.py files (or in the one test module that
uses them), plain helpers in modules of their own. No module imports conftest, a test module or
a fixture: such an import needs a `noqa` (the linter sees an unused name, shadowed by the
parameter of the same name) and hides where a fixture comes from."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def is_fixture(decorator: ast.expr) -> bool:
    """`@pytest.fixture`, `@pytest.fixture(...)`, `@fixture` or `@fixture(...)`."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr == "fixture"
    return isinstance(target, ast.Name) and target.id == "fixture"


def fixtures_in(tree: ast.Module) -> set[str]:
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(is_fixture(d) for d in node.decorator_list)}


def layout_problems(root: Path) -> list[str]:
    """What breaks the layout among the Python files under `root`, one line each."""
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    fixtures: dict[str, set[str]] = {}
    for path, tree in trees.items():
        fixtures.setdefault(path.stem, set()).update(fixtures_in(tree))
    folders = {root.name} | {d.name for d in root.rglob("*") if d.is_dir()}

    def local(name: str) -> str | None:
        """The file (its stem) under `root` that `name` imports, if any. Test folders have no
        __init__.py: pytest puts each on sys.path, so a module is imported by its file name
        (`tests.conftest`, `e2e.browser_call` count too)."""
        parts = name.split(".")
        while len(parts) > 1 and parts[0] in folders:
            parts = parts[1:]
        return parts[0] if parts[0] in fixtures else None

    def forbidden(name: str) -> bool:  # conftest or a test module: pytest loads those itself
        stem = local(name)
        return stem is not None and (stem == "conftest" or stem.startswith("test_"))

    problems = []
    for path, tree in trees.items():
        where = path.relative_to(root)
        helper = path.stem != "conftest" and not path.stem.startswith("test_")
        if helper and fixtures_in(tree):
            problems.append(f"{where} is a helper module but defines fixtures "
                            f"{sorted(fixtures_in(tree))}: they belong in a conftest.py")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                # `from tests import conftest` names the module among the imported names.
                names = [module] if forbidden(module) else [
                    f"{module}.{alias.name}".lstrip(".") for alias in node.names]
                source = local(module) if module else None
                problems += [f"{where}:{node.lineno} imports the fixture {alias.name!r} from "
                             f"{module}" for alias in node.names
                             if source not in (None, "conftest")
                             and alias.name in fixtures[source]]
            else:
                continue
            problems += [f"{where}:{node.lineno} imports {name}" for name in names
                         if forbidden(name)]
    return sorted(set(problems))


def test_no_module_imports_conftest_a_test_module_or_a_fixture() -> None:
    problems = layout_problems(TESTS)
    assert not problems, "\n".join(problems)


OLD_LAYOUT = {  # how the tests shared code before: every kind of import this file forbids
    "conftest.py": "import pytest\nfrom calls import consult  # noqa: F401\n"
                   "class People: ...\n@pytest.fixture\ndef app(): ...\n",
    "calls.py": "import pytest\nfrom conftest import People\n"
                "@pytest.fixture\ndef consult(app): ...\n",
    "test_signaling.py": "from conftest import People\nimport pytest\n"
                         "@pytest.fixture(scope='module')\ndef socket(): ...\n",
    "test_consent.py": "from test_signaling import socket  # noqa: F401\n",
    "e2e/browser_call.py": "from pytest import fixture\n@fixture\ndef chromium(): ...\n",
    "e2e/test_call_e2e.py": "from browser_call import chromium  # noqa: F401\n"
                            "import tests.conftest\n",
}


def test_the_check_finds_each_kind_of_import(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    for name, source in OLD_LAYOUT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    assert layout_problems(root) == sorted([
        "calls.py is a helper module but defines fixtures ['consult']: they belong in a "
        "conftest.py",
        "conftest.py:2 imports the fixture 'consult' from calls",
        "calls.py:2 imports conftest",
        "test_signaling.py:1 imports conftest",
        "test_consent.py:1 imports the fixture 'socket' from test_signaling",
        "test_consent.py:1 imports test_signaling",
        "e2e/browser_call.py is a helper module but defines fixtures ['chromium']: they "
        "belong in a conftest.py",
        "e2e/test_call_e2e.py:1 imports the fixture 'chromium' from browser_call",
        "e2e/test_call_e2e.py:2 imports tests.conftest",
    ])
