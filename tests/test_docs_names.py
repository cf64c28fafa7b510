"""Docs name what exists (issue #26, "Docs match the code").

Every repository path (``optplan/...``, ``formulations/...``, ``tests/...``, ``docs/...``,
``benchmarks/...``, ``examples/...``, ``instances/...``, ``scripts/...``) and every dotted
name (``optplan.solvers.dp.DPOptions``, ``formulations.two_stage.aggregated.RecourseCurve``)
that README.md, docs/, the other Markdown files and the module docstrings and comments of
``optplan/`` and ``formulations/`` mention must exist: the path on disk, the dotted name as a
module, or as an attribute of one (imported for real).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from conftest import REPO

PATH = re.compile(r"(?<![\w/.-])((?:optplan|formulations|tests|benchmarks|examples|instances|docs|scripts)/[\w./-]*\w)")
DOTTED = re.compile(r"(?<![\w./-])((?:optplan|formulations)(?:\.[A-Za-z_]\w*)+)")
#: Dotted names that are not modules: logger names (optplan.solvers.base.ENGINE_LOGGER and a test's).
NOT_MODULES = {"optplan.engine", "optplan.test_folding"}
#: Paths a doc names on purpose although they are not in the repository: what a command
#: writes when it runs (under out/) is not named with these prefixes, so the list is short.
NOT_FILES: set[str] = set()


def _documents() -> list[Path]:
    md = [REPO / "README.md", *sorted(REPO.glob("docs/*.md")), *sorted(REPO.glob("benchmarks/*.md")),
          *sorted(REPO.glob("examples/**/*.md")), *sorted(REPO.glob("instances/*/README.md"))]
    code = sorted([*REPO.glob("optplan/**/*.py"), *REPO.glob("formulations/**/*.py"), *REPO.glob("benchmarks/*.py"),
                   *REPO.glob("scripts/*.py"), *REPO.glob("examples/*.py"),
                   *(p for p in REPO.glob("tests/**/*.py") if p.name != "test_docs_names.py")])  # it names wrong ones
    return md + code


def _dotted_exists(name: str) -> bool:
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def missing_names(text: str, where: str) -> list[str]:
    out = []
    for m in PATH.finditer(text):
        name = m.group(1).rstrip(".")
        if name not in NOT_FILES and not (REPO / name).exists():
            out.append(f"{where}: {name} (no such file or folder)")
    for m in DOTTED.finditer(text):
        name = m.group(1).rstrip(".")
        if name.endswith((".py", ".md", ".csv", ".json", ".yaml")):
            continue  # a file name written with dots, checked as a path
        if name not in NOT_MODULES and not _dotted_exists(name):
            out.append(f"{where}: {name} (no such module or attribute)")
    return out


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_named_file_and_module_exists(doc):
    assert missing_names(doc.read_text(), str(doc.relative_to(REPO))) == []


def test_every_public_name_loads():
    """optplan.__all__ (its lazy exports name their modules in strings) all resolve."""
    import optplan

    for name in optplan.__all__:
        assert getattr(optplan, name) is not None, name


def test_the_check_catches_a_missing_name():
    """It can fail: a file and an attribute that do not exist are named, the ones that do are not."""
    text = ("see optplan/evaluate.py and optplan.solvers.base.NoSuchThing, not optplan/solvers/base.py or "
            "optplan.solvers.base.Deadline; import_module(\"optplan.evaluation.policy_old\")")
    assert missing_names(text, "x.md") == ["x.md: optplan/evaluate.py (no such file or folder)",
                                           "x.md: optplan.solvers.base.NoSuchThing (no such module or attribute)",
                                           "x.md: optplan.evaluation.policy_old (no such module or attribute)"]
