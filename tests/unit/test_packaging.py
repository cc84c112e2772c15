"""What a regular (non-editable) install ships: every package, every data file, every
dependency the code imports. The end-to-end check (`pip install .` into a fresh virtual
environment, then `maillon init` and `maillon up`) is tests/integration/test_install.py."""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
CODE_ROOTS = ["maillon", "synapse_modules", "coordination_bot", "appservice", "dossier_api"]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _package_dirs() -> dict[str, Path]:
    """Every directory of the installed tree, by package name (data folders included)."""
    roots = {name: ROOT / name for name in CODE_ROOTS}
    roots.update({pkg: ROOT / d for pkg, d in SETUPTOOLS.get("package-dir", {}).items()})
    found: dict[str, Path] = {}
    for package, top in roots.items():
        for directory, subdirs, files in os.walk(top):
            subdirs[:] = [d for d in subdirs if d != "__pycache__" and not d.startswith(".")]
            if files:
                rel = Path(directory).relative_to(top)
                found[".".join([package, *rel.parts])] = Path(directory)
    return found


def test_every_package_of_the_tree_is_listed() -> None:
    assert sorted(SETUPTOOLS["packages"]) == sorted(_package_dirs())


def test_every_data_file_is_package_data() -> None:
    globs: dict[str, list[str]] = SETUPTOOLS["package-data"]
    missing = []
    for package, directory in _package_dirs().items():
        for path in directory.iterdir():
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                if not any(fnmatch.fnmatch(path.name, g) for g in globs.get(package, [])):
                    missing.append(str(path.relative_to(ROOT)))
    assert missing == [], f"not shipped by a regular install: {missing}"


def _imported_top_level_modules() -> dict[str, set[str]]:
    own = set(CODE_ROOTS) | set(SETUPTOOLS.get("package-dir", {}))
    found: dict[str, set[str]] = {}
    for directory in _package_dirs().values():
        for path in directory.glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in own:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_module_comes_from_a_declared_dependency() -> None:
    declared = {
        _canonical(re.match(r"[A-Za-z0-9._-]+", req).group())  # type: ignore[union-attr]
        for req in PYPROJECT["project"]["dependencies"]
    }
    providers = packages_distributions()
    imported = _imported_top_level_modules()
    assert {"aiohttp", "sqlalchemy", "nio", "synapse"} <= set(imported)  # the walk sees code
    undeclared = {
        module: sorted(imported[module])
        for module in imported
        if not declared & {_canonical(d) for d in providers.get(module, [])}
    }
    assert undeclared == {}, f"imported but not declared in pyproject.toml: {undeclared}"
