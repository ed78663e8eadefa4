"""The architecture's arrows, checked on the source: which package may import which.

    drift                       -> nothing of ours (the method stands alone)
    common                      -> nothing of ours (plumbing both sides share)
    model                       -> common
    data                        -> common
    policy                      -> drift, model, common
    training/evaluation/collect -> anything of drifting_policy, and envs
    toy                         -> drift, common
    envs                        -> nothing of drifting_policy or image_gen
    image_gen                   -> drifting_policy.drift and drifting_policy.common only
and an entry point (a console script's module) is imported by no module of the package.

Imports are read from the AST, including those inside functions (lazy imports count) and under
TYPE_CHECKING; a new violation fails with the file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
OURS = ("drifting_policy", "envs", "image_gen", "configs")
ANYTHING_OF_OURS = ("drifting_policy", "envs")

# importer prefix -> prefixes of our modules it may import (its own package is always allowed)
ALLOWED = {
    "drifting_policy": (),  # the package's __init__ only: a new top-level module must join a subpackage
    "drifting_policy.drift": (),
    "drifting_policy.common": (),
    "drifting_policy.model": ("drifting_policy.common",),
    "drifting_policy.data": ("drifting_policy.common",),
    "drifting_policy.policy": ("drifting_policy.drift", "drifting_policy.model", "drifting_policy.common"),
    "drifting_policy.training": ANYTHING_OF_OURS,
    "drifting_policy.evaluation": ANYTHING_OF_OURS,
    "drifting_policy.collect": ANYTHING_OF_OURS,
    "drifting_policy.toy": ("drifting_policy.drift", "drifting_policy.common"),
    "envs": (),
    "image_gen": ("drifting_policy.drift", "drifting_policy.common"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """The ALLOWED key that governs `module` (longest matching prefix)."""
    matches = [key for key in ALLOWED
               if module == key or (key != "drifting_policy" and module.startswith(key + "."))]
    if not matches:
        raise AssertionError(f"{module} belongs to no package of the contract; add its package to ALLOWED "
                             f"in {Path(__file__).name} (and to the architecture)")
    return max(matches, key=len)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from pkg import module` imports a module too
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def is_ours(name: str) -> bool:
    return name.split(".")[0] in OURS


def source_files() -> list[Path]:
    return sorted(p for top in ("drifting_policy", "envs", "image_gen") for p in (ROOT / top).rglob("*.py"))


def existing_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def entry_point_modules() -> set[str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {target.split(":")[0] for target in scripts.values()}


def test_every_import_follows_the_arrows():
    problems = []
    for path in source_files():
        importer = module_name(path)
        rule = package_of(importer)
        own = rule if rule != "drifting_policy" else "drifting_policy.__init__"
        for line, name in imported_modules(path):
            if not is_ours(name) or not existing_module(name) or name.split(".")[0] == "configs":
                continue  # third-party, or a name imported from a module (not a module itself)
            allowed = (own, *ALLOWED[rule])
            if not any(name == prefix or name.startswith(prefix + ".") for prefix in allowed):
                problems.append(f"{path.relative_to(ROOT)}:{line}: {importer} imports {name}; "
                                f"{rule} may import only {sorted(ALLOWED[rule]) or 'nothing of ours'}")
    assert not problems, "import contract broken:\n" + "\n".join(problems)


def test_entry_points_are_leaves():
    entries = entry_point_modules()
    assert entries, "pyproject.toml lists no console scripts"
    problems = []
    for path in source_files():
        importer = module_name(path)
        for line, name in imported_modules(path):
            if name in entries and name != importer:
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports the entry point {name}; move what "
                                "it needs into a library module")
    assert not problems, "entry points must be leaves:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, expected", [
    ("from drifting_policy.policy import base\n", {"drifting_policy.policy", "drifting_policy.policy.base"}),
    ("from . import field\n", {"drifting_policy.drift", "drifting_policy.drift.field"}),
    ("def f():\n    import image_gen.models.dit\n", {"image_gen.models.dit"}),
])
def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch, source, expected):
    """The checker itself: relative and function-level imports are found (else violations could hide)."""
    fake_root = tmp_path
    (fake_root / "drifting_policy" / "drift").mkdir(parents=True)
    path = fake_root / "drifting_policy" / "drift" / "probe.py"
    path.write_text(source)
    monkeypatch.setattr(__import__(__name__), "ROOT", fake_root)
    assert {name for _, name in imported_modules(path)} == expected
