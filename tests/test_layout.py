"""The layout's rules that import-linter cannot see (the contracts in pyproject.toml see the rest):
no import inside a function but where Django forces one, hand-written SQL only in statements.py
modules, and no test reaching into a private name."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ["chatbridge", "rooms", "users", "watson"]
SQL_RULE = "S" + "608"  # spelled apart, so this file does not match its own check


def _modules(*packages: str) -> list[Path]:
    return sorted(
        path
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def _function_level_imports(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found.append((function.name, node.lineno))
    return found


def test_apps_import_at_module_level_except_in_app_ready():
    """An import inside a function hides a cycle. The one Django forces: an AppConfig's ready()
    imports what needs the models, which load only once every app is registered."""
    hidden = [
        f"{path.relative_to(ROOT)}:{line} in {name}()"
        for path in _modules(*APPS)
        for name, line in _function_level_imports(ast.parse(path.read_text()))
        if not (path.name == "apps.py" and name == "ready")
    ]
    assert hidden == []


def test_sql_is_written_only_in_statements_modules():
    """ruff's S608 is allowed in statements.py by configuration; nowhere else may silence it."""
    silenced = [
        str(path.relative_to(ROOT))
        for path in _modules(*APPS, "tests", "bench")
        if f"noqa: {SQL_RULE}" in path.read_text()
    ]
    assert silenced == []


def test_the_rule_itself_sees_a_function_level_import():
    tree = ast.parse("def f():\n    from rooms import models\n")
    assert _function_level_imports(tree) == [("f", 2)]


@pytest.mark.parametrize("path", _modules("tests"), ids=lambda path: path.name)
def test_tests_import_no_private_name(path: Path):
    """Tests speak to the code as its callers do: no `_name`, no management command's module."""
    private = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if ".management.commands" in node.module:
                private.append(node.module)
            private += [alias.name for alias in node.names if alias.name.startswith("_")]
    assert private == []
