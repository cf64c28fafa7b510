"""What-if: Instance.with_changes (validated like files, same messages), Scale, compare,
the plan's notebook display, and the CLI's --set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import OBJ_RTOL, REPO

import optplan
from optplan.cli import main
from optplan.errors import InstanceError
from optplan.io.whatif import Scale, parse_assignment


@pytest.fixture(scope="module")
def demo():
    return optplan.load_instance(REPO / "instances" / "demo")


def test_changes_make_a_new_instance_and_leave_the_old_one(demo):
    before = demo.manifest.budgets.total
    changed = demo.with_changes({"budgets.total": 5000, "depots[D001].onboarding_cap": 2.5,
                                 "demand.blocks": Scale(1.1)}, recourse__surge_cap_share=0.2)
    assert changed.manifest.budgets.total == 5000 and demo.manifest.budgets.total == before
    assert changed.manifest.recourse.surge_cap_share == 0.2
    dep = changed.tables["depots"].set_index("depot")
    assert dep.loc["D001", "onboarding_cap"] == 2.5
    assert dep.loc["D002", "onboarding_cap"] == demo.tables["depots"].set_index("depot").loc["D002", "onboarding_cap"]
    np.testing.assert_allclose(changed.tables["demand"]["blocks"], 1.1 * demo.tables["demand"]["blocks"], rtol=1e-12)
    plan = optplan.solve(changed)
    assert plan.kpis["first_stage_spend"] <= 5000 * (1 + 1e-7)


def test_none_removes_an_optional_cap(demo):
    changed = demo.with_changes({"budgets.total": None, "channels[referral].applicant_cap": None})
    assert changed.manifest.budgets.total is None
    assert np.isnan(changed.tables["channels"].set_index("channel").loc["referral", "applicant_cap"])


def _file_problems(demo, tmp_path, path, value):
    """The problems load_instance reports for the same bad value written into the files."""
    demo.write(tmp_path)
    head, _, tail = path.partition(".")
    if "[" in head:
        table, key = head[:-1].split("[")
        file = tmp_path / f"{table}.csv"
        df = pd.read_csv(file, dtype=str, keep_default_na=False)
        keys = optplan.io.instance.TABLE_BY_NAME[table].key
        mask = np.ones(len(df), bool)
        for k, v in zip(keys, key.split(","), strict=True):
            mask &= (df[k] == v).to_numpy()
        df.loc[mask, tail] = str(value)
        df.to_csv(file, index=False)
    else:
        manifest = yaml.safe_load((tmp_path / "instance.yaml").read_text())
        manifest[head][tail] = value
        (tmp_path / "instance.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(InstanceError) as err:
        optplan.load_instance(tmp_path)
    return err.value.problems


BAD = [
    ("budgets.total", -5),
    ("penalties.unserved_cost_per_block", "abc"),
    ("recourse.surge_cap_share", 11),
    ("channels[agency].cost_per_applicant", -3),
    ("depots[D001].retention", 1.5),
    ("demand[D002,4,S003].blocks", -1),
    ("scenarios[S001].probability", 0.9),
]


@pytest.mark.parametrize(("path", "value"), BAD, ids=[b[0] for b in BAD])
def test_with_changes_rejects_what_validate_rejects_with_the_same_messages(demo, tmp_path, path, value):
    with pytest.raises(InstanceError) as err:
        demo.with_changes({path: value})
    ours = [(p.file, p.line, p.field, p.expected) for p in err.value.problems]
    theirs = [(p.file, p.line, p.field, p.expected) for p in _file_problems(demo, tmp_path, path, value)]
    assert ours and ours == theirs


def test_unknown_paths_and_rows_are_named(demo):
    with pytest.raises(InstanceError) as err:
        demo.with_changes({"foo.bar": 1, "channels[nope].cost_per_applicant": 1, "channels.channel": "x",
                           "budgets.nope": 3, "demand[D001,1,base,x].blocks": 1})
    fields = [p.field for p in err.value.problems]
    assert fields == ["foo.bar", "channels[nope].cost_per_applicant", "channels.channel", "budgets.nope",
                      "demand[D001,1,base,x].blocks"]


def test_the_first_key_values_pick_every_row_under_them(demo):
    """demand[D001].blocks scales every week and scenario of D001 and nothing else (the
    workspace's demand by region is one such change per depot of the region)."""
    changed = demo.with_changes({"demand[D001].blocks": Scale(1.25), "demand[D002,3].blocks": Scale(0.5)})
    a, b = demo.tables["demand"], changed.tables["demand"]
    factor = np.where(a["depot"] == "D001", 1.25, np.where((a["depot"] == "D002") & (a["week"] == 3), 0.5, 1.0))
    np.testing.assert_allclose(b["blocks"].to_numpy(float), factor * a["blocks"].to_numpy(float), rtol=1e-12)
    with pytest.raises(InstanceError) as err:
        demo.with_changes({"demand[D999].blocks": Scale(2)})
    assert "no such row" in str(err.value)


def test_parse_assignment_reads_yaml_scalars_and_scales():
    assert parse_assignment("budgets.total=5000") == ("budgets.total", 5000)
    assert parse_assignment("budgets.weekly=null") == ("budgets.weekly", None)
    assert parse_assignment("demand.blocks=*1.25") == ("demand.blocks", Scale(1.25))
    assert parse_assignment("horizon.currency=EUR") == ("horizon.currency", "EUR")
    with pytest.raises(InstanceError):
        parse_assignment("budgets.total")


def test_compare_lists_the_differences(demo):
    a = optplan.solve(demo)
    b = optplan.solve(demo.with_changes({"budgets.total": 4000}))
    same = optplan.compare(a, a)
    assert (same["difference"].abs() <= 1e-9).all()
    diff = optplan.compare(a, b, labels=("base", "tight")).set_index(["kind", "item"])
    assert diff.loc[("cost", "total"), "difference"] == pytest.approx(b.cost["total"] - a.cost["total"], rel=OBJ_RTOL)
    assert diff.loc[("cost", "total"), "difference"] > 0  # a tighter budget costs more
    assert diff.loc[("kpi", "first_stage_spend"), "tight"] <= 4000 * (1 + 1e-7)
    assert {"base", "tight", "unit", "relative"} <= set(diff.columns)


def test_compare_matches_depots_and_channels_by_id_not_position():
    """Plans of different weeks list depots in their own order, and a network may gain a depot:
    rows are matched by id; a depot one plan lacks is empty on that side."""
    from types import SimpleNamespace as NS

    from formulations.data import Decisions

    def plan(depots, channels, x):
        x = np.asarray(x, float)[:, :, None]  # (D, C, 1 week)
        return NS(data=NS(depots=depots, channels=channels), currency="USD", cost={"total": 1.0}, kpis={},
                  decisions=Decisions(x, np.ones((len(depots), 1, 1))))

    a = plan(("D1", "D2"), ("ref", "ads"), [[1, 2], [3, 4]])
    b = plan(("D3", "D2", "D1"), ("ads", "ref"), [[5, 5], [40, 30], [20, 10]])
    t = optplan.compare(a, b).set_index("item")
    assert t.loc["applicants at D1", ["a", "b"]].tolist() == [3, 30]
    assert t.loc["applicants at D2", ["a", "b"]].tolist() == [7, 70]
    assert np.isnan(t.loc["applicants at D3", "a"]) and t.loc["applicants at D3", "b"] == 10
    assert t.loc["applicants ref", ["a", "b"]].tolist() == [4, 5 + 30 + 10]
    assert t.loc["applicants ads", ["a", "b"]].tolist() == [6, 5 + 40 + 20]


def test_plan_display_is_short_and_html_in_notebooks(demo):
    plan = optplan.solve(demo)
    assert len(repr(plan)) < 200
    html = plan._repr_html_()
    assert "expected cost by component" in html and demo.currency in html and "service_level" in html


def test_cli_set_changes_the_instance_and_bad_values_exit_2(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["solve", str(REPO / "instances" / "demo"), "--out", str(tmp_path / "a"),
                              "--set", "budgets.total=4000", "--quiet"])
    assert ok.exit_code == 0, ok.output
    import json

    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["kpis"]["first_stage_spend"] <= 4000 * (1 + 1e-7)
    bad = runner.invoke(main, ["solve", str(REPO / "instances" / "demo"), "--out", str(tmp_path / "b"),
                               "--set", "budgets.total=-5", "--set", "nope.x=1"])
    assert bad.exit_code == 2
    assert "budgets.total" in bad.output and "nope.x" in bad.output
    assert not (tmp_path / "b").exists()


def test_one_entry_of_a_mapping_field():
    """SECTION.FIELD.KEY sets (or with None removes) one entry of a mapping; an unknown key is
    the same one-line error as in a file."""
    import optplan as op

    demo = op.load_instance(REPO / "instances" / "demo")
    changed = demo.with_changes({"targets.service_level_by_region.R01": 0.95, "budgets.regions.R01": 20000.0})
    assert changed.manifest.targets.service_level_by_region == {"R01": 0.95}
    assert changed.manifest.budgets.regions == {"R01": 20000.0}
    assert changed.with_changes({"targets.service_level_by_region.R01": None}).manifest.targets.service_level_by_region == {}
    with pytest.raises(InstanceError, match="unknown region 'NOPE'"):
        demo.with_changes({"targets.service_level_by_region.NOPE": 0.9})
