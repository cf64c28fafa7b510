"""Every command the README and docs/ show in a ```bash block runs as written (issue #25).

Each document's commands run in order, from the root of a fresh copy of the repository (the
files git tracks, nothing beside them: no shared folder), as a newcomer would paste them. Each must
exit 0; every folder or file a command names with ``--out`` must exist afterwards and hold no
non-finite number in its CSV files; and the copy's ``git status --porcelain`` must be empty
afterwards: examples write under ``out/`` (ignored), never over shipped files.

Blocks that show a form rather than a runnable command (placeholders such as ``CONFIG`` or a
cluster address) are fenced as ```text, not ```bash; the README's first block (install, then
run) is checked against the two set-up commands and its run part is executed.

The run is marked slow (several minutes): CI runs it in its second step; the checks of the
blocks themselves run with every test run. A command shown again in a later document, with
nothing after it there reading its output, runs once, in the earliest document (``run_here``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

DOCUMENTS = ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))]
#: The README's set-up commands, as the issue's newcomer types them (first block, in order).
SETUP = ['pip install -e . && optplan solve instances/demo --out out/demo',
         'pip install -e ".[test]" && python -m pytest -q']
#: One command may take this long (seconds) before it counts as hung. Generous: these machines
#: are shared; the slowest documented command takes about a minute when the machine is idle.
COMMAND_TIMEOUT = 900


def bash_commands(path: Path) -> list[str]:
    """The commands of every ```bash block of ``path``, continuation lines joined; comment
    lines and blank lines dropped (a trailing comment stays: bash ignores it)."""
    out, block, pending = [], False, ""
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            block = line.strip() == "```bash"
            continue
        if not block:
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        if text and not text.startswith("#"):
            out.append(text)
    return out


def _copy_of_repository(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=REPO,  # tracked files only, as a clone has
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "copy"]):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    return dest


def _outputs(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--out", "--save-mps")]


def _non_finite_cells(folder: Path) -> list[str]:
    bad = []
    for csv in folder.rglob("*.csv") if folder.is_dir() else []:
        for row, line in enumerate(csv.read_text().splitlines(), start=1):
            if re.search(r"(^|,)\s*[-+]?(nan|inf|infinity)\s*(,|$)", line, flags=re.IGNORECASE):
                bad.append(f"{csv}:{row}: {line[:120]}")
                break
    return bad


def _command(text: str) -> str:
    """A command without its trailing comment, spaces normalised: two documents showing the same
    command with different comments show the same command."""
    return " ".join(shlex.split(text, comments=True))


def run_here(doc: str) -> list[tuple[str, bool]]:
    """``doc``'s commands in order, each with whether this document's run executes it. A command
    an earlier document (README.md first) already shows and runs is not run again here when
    nothing after it in this document reads what it writes: it names no output a later command
    names, this document does not show it twice (a repeat relies on its first run, as the
    pipeline's second run relies on the first), and it reads nothing an earlier command of this
    document wrote (the same words on other inputs are another command). Every command still runs once, in the earliest document
    that shows it."""
    commands = bash_commands(REPO / doc)
    if doc == "README.md":  # the set-up block: the package is installed already; run what it runs
        commands = [c.split(" && ", 1)[1] for c in commands[:2] if "pytest" not in c] + commands[2:]
    earlier = set()
    for other in DOCUMENTS[:DOCUMENTS.index(doc)]:
        earlier |= {_command(c) for c in bash_commands(REPO / other)}
        if other == "README.md":
            earlier |= {_command(c.split(" && ", 1)[1]) for c in bash_commands(REPO / other)[:1]}
    out = []
    for i, command in enumerate(commands):
        later = commands[i + 1:]
        others = {_command(c) for j, c in enumerate(commands) if j != i}
        made_here = [o for c in commands[:i] for o in _outputs(c)]
        independent = (_command(command) not in others and not any(o in c for o in _outputs(command) for c in later)
                       and not any(o in command for o in made_here))
        out.append((command, not (_command(command) in earlier and independent)))
    return out


def test_a_command_shown_again_runs_once_unless_a_later_one_needs_it():
    plan = {doc: run_here(doc) for doc in DOCUMENTS}
    skipped = {(doc, _command(c)) for doc, rows in plan.items() for c, run in rows if not run}
    ran = {_command(c) for rows in plan.values() for c, run in rows if run}
    assert all(c in ran for _, c in skipped)  # every command still runs somewhere
    pipeline = [run for c, run in plan["docs/pipeline.md"] if "pipeline.yaml" in c and "longlead" not in c]
    assert pipeline == [True, True]  # its second run relies on the first: both run


def test_the_readme_opens_with_the_two_setup_commands():
    assert bash_commands(REPO / "README.md")[:2] == SETUP


def test_every_documented_block_is_bash_or_text():
    """A command block fenced ```sh or ```console would escape the run below."""
    for doc in DOCUMENTS:
        fences = {line.strip() for line in (REPO / doc).read_text().splitlines() if line.startswith("```")}
        assert fences <= {"```", "```bash", "```text", "```python", "```yaml", "```json", "```csv"}, (doc, fences)


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCUMENTS if bash_commands(REPO / d)])
def test_documented_commands_run_as_written(doc, tmp_path):
    commands = [c for c, run in run_here(doc) if run]
    root = _copy_of_repository(tmp_path / "repo")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for command in commands:
        r = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True,
                           timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"{doc}: `{command}` exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, f"{doc}: `{command}` printed a traceback\n{r.stderr[-3000:]}"
        for out in _outputs(command):
            assert (root / out).exists(), f"{doc}: `{command}` did not write {out}"
            assert not _non_finite_cells(root / out), (doc, command, _non_finite_cells(root / out))
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    assert status.stdout == "", f"{doc}: its commands left files outside out/ or changed shipped ones:\n{status.stdout}"
