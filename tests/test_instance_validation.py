"""Every class of bad input gets a one-line message naming file, line and field; the CLI
exits with status 2, prints no traceback, and writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import optplan
from optplan.cli import main


@pytest.fixture
def inst_dir(tmp_path, demo_path) -> Path:
    dst = tmp_path / "inst"
    shutil.copytree(demo_path, dst)
    return dst


def edit_csv(path: Path, line: int, column: str, value: str) -> None:
    """Set the cell at 1-based file ``line`` (header = 1) in ``column``."""
    rows = path.read_text().splitlines()
    header = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[header.index(column)] = value
    rows[line - 1] = ",".join(cells)
    path.write_text("\n".join(rows) + "\n")


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(optplan.InstanceError) as err:
        optplan.load_instance(folder)
    return [str(p) for p in err.value.problems]


def cli(*args):
    return CliRunner().invoke(main, list(map(str, args)))


CASES = {
    # name: (file, line, column, value, expected fragments of the one message)
    "negative cost": ("channels.csv", 2, "cost_per_applicant", "-3", ["channels.csv:2", "cost_per_applicant", "[0, 10000000]", "-3"]),
    "wrong type": ("depots.csv", 3, "active_drivers", "many", ["depots.csv:3", "active_drivers", "a number", "'many'"]),
    "probability above 1": ("depots.csv", 2, "retention", "1.3", ["depots.csv:2", "retention", "in [0, 1]", "1.3"]),
    "negative probability": ("yield.csv", 3, "probability", "-0.1", ["yield.csv:3", "probability", "in [0, 1]"]),
    "NaN": ("demand.csv", 5, "blocks", "NaN", ["demand.csv:5", "blocks", "NaN"]),
    "empty required cell": ("depots.csv", 4, "blocks_per_driver", "", ["depots.csv:4", "blocks_per_driver", "an empty cell"]),
    "fractional week": ("demand.csv", 7, "week", "2.5", ["demand.csv:7", "week", "a whole number"]),
    "unknown depot": ("demand.csv", 9, "depot", "D999", ["demand.csv:9", "depot", "unknown depot 'D999'"]),
    "unknown channel": ("yield.csv", 2, "channel", "tiktok", ["yield.csv:2", "channel", "unknown channel 'tiktok'"]),
    "week beyond horizon": ("pipeline.csv", 2, "week", "99", ["pipeline.csv:2", "week", "1..12"]),
    "infinite cap": ("channels.csv", 2, "applicant_cap", "inf", ["channels.csv:2", "applicant_cap", "finite"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_cell_is_reported_with_file_line_field(inst_dir, case):
    file, line, column, value, fragments = CASES[case]
    edit_csv(inst_dir / file, line, column, value)
    found = problems_of(inst_dir)
    assert any(all(f in p for f in fragments) for p in found), found


def test_probabilities_not_summing_to_one(inst_dir):
    edit_csv(inst_dir / "scenarios.csv", 2, "probability", "0.5")
    (msg,) = [p for p in problems_of(inst_dir) if "summing to 1" in p]
    assert msg.startswith("scenarios.csv:") and "probability" in msg


def test_yield_kernel_above_one(inst_dir):
    rows = (inst_dir / "yield.csv").read_text().splitlines()
    rows = [rows[0]] + [r.rsplit(",", 1)[0] + ",0.4" for r in rows[1:]]
    (inst_dir / "yield.csv").write_text("\n".join(rows) + "\n")
    found = problems_of(inst_dir)
    assert any("yield.csv:" in p and "at most 1" in p and "job_board" in p and "1.2" in p for p in found), found


def test_duplicate_keys(inst_dir):
    rows = (inst_dir / "depots.csv").read_text().splitlines()
    (inst_dir / "depots.csv").write_text("\n".join(rows + [rows[1]]) + "\n")
    found = problems_of(inst_dir)
    assert any("depots.csv:7" in p and "duplicate of line 2" in p and "depot" in p for p in found), found


def test_missing_file_and_missing_column(inst_dir):
    (inst_dir / "channels.csv").unlink()
    rows = (inst_dir / "depots.csv").read_text().splitlines()
    header = rows[0].split(",")
    i = header.index("retention")
    (inst_dir / "depots.csv").write_text("\n".join(",".join(c for j, c in enumerate(r.split(",")) if j != i) for r in rows) + "\n")
    found = problems_of(inst_dir)
    assert any(p.startswith("channels.csv:") and "no such file" in p for p in found), found
    assert any(p.startswith("depots.csv:1") and "'retention'" in p for p in found), found


def test_unknown_region_in_budget_and_bad_manifest(inst_dir):
    text = (inst_dir / "instance.yaml").read_text()
    text = text.replace("regions: {}", "regions:\n    atlantis: 100.0")
    text = text.replace("unserved_cost_per_block: 160.0", "unserved_cost_per_block: -1")
    (inst_dir / "instance.yaml").write_text(text)
    found = problems_of(inst_dir)
    assert any("penalties.unserved_cost_per_block" in p and "-1" in p for p in found), found


def test_unknown_region_is_named(inst_dir):
    text = (inst_dir / "instance.yaml").read_text().replace("regions: {}", "regions:\n    atlantis: 100.0")
    (inst_dir / "instance.yaml").write_text(text)
    found = problems_of(inst_dir)
    assert any("budgets.regions.atlantis" in p and "unknown region 'atlantis'" in p for p in found), found


def test_unknown_column_suggests_the_right_name(inst_dir):
    path = inst_dir / "depots.csv"
    path.write_text(path.read_text().replace("retention", "retension", 1))
    found = problems_of(inst_dir)
    assert any("did you mean 'retention'" in p for p in found), found


def test_all_problems_at_once_and_cli_exit_status(inst_dir, tmp_path):
    for file, line, column, value, _ in CASES.values():
        edit_csv(inst_dir / file, line, column, value)
    found = problems_of(inst_dir)
    assert len(found) >= len(CASES)
    out = tmp_path / "out"
    for command in (["validate", inst_dir], ["solve", inst_dir, "--out", out]):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        lines = [x for x in result.output.splitlines() if x.startswith("error: ")]
        assert len(lines) >= len(CASES)
    assert not out.exists(), "nothing may be written when the input is bad"


def test_inputs_are_never_modified(inst_dir, tmp_path):
    before = {p.name: p.read_bytes() for p in inst_dir.iterdir()}
    assert cli("solve", inst_dir, "--out", tmp_path / "out").exit_code == 0
    assert {p.name: p.read_bytes() for p in inst_dir.iterdir()} == before


def test_messy_but_valid_files_load(inst_dir):
    """CRLF line endings, a UTF-8 byte-order mark and spaces around cells are accepted."""
    for name in ("depots.csv", "demand.csv"):
        path = inst_dir / name
        text = path.read_text().replace(",", " , ").replace("\n", "\r\n")
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    inst = optplan.load_instance(inst_dir)
    assert len(inst.depots) == 5


def test_bad_yaml_names_the_line(inst_dir):
    (inst_dir / "instance.yaml").write_text("name: demo\nhorizon: [weeks: 3\n")
    found = problems_of(inst_dir)
    assert found and found[0].startswith("instance.yaml:") and "valid YAML" in found[0]


def test_missing_instance_folder(tmp_path):
    result = cli("validate", tmp_path / "nowhere")
    assert result.exit_code == 2 and "no such file" in result.output and "Traceback" not in result.output


def test_debug_shows_the_traceback(inst_dir):
    edit_csv(inst_dir / "depots.csv", 2, "retention", "7")
    result = cli("validate", inst_dir, "--debug")
    assert result.exit_code != 0 and isinstance(result.exception, optplan.InstanceError)
