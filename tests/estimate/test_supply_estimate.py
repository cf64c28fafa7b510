"""Driver supply by week of year and tenure from an activity log (issue #15 part 4), against
the synthetic log's truth, and through estimate retention -> build-instance --supply."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from test_estimation import build_cli, build_inputs  # noqa: F401 - a fixture

import optplan
from optplan.cli import main
from optplan.estimate.supply import supply_indices, supply_table
from optplan.estimate.synthetic import generate_activity_log

#: Blocks per active driver-week by week of year against the truth: relative, mean and worst cell.
MEAN_RTOL, MAX_RTOL = 0.025, 0.10
#: Tenure index against 1 when the truth has no tenure effect.
TENURE_ATOL = 0.03


@pytest.fixture(scope="module")
def seasonal_log():
    return generate_activity_log(20000, seed=3, depots=3, weeks=104, seasonal_amplitude=0.3)


def test_season_and_tenure_against_the_truth(seasonal_log):
    """A +-30% seasonal swing in blocks per active driver-week (truth: blocks_lambda x (1 -
    skip) x season by ISO week): each depot's estimate by week of year is close to it, and
    the tenure index, which has no effect in the truth, is ~1 (before it was adjusted for the
    season, cohorts starting before the peak showed 1.11 at 8-15 weeks and 0.93 at 16+)."""
    log, truth = seasonal_log
    season, tenure = supply_indices(log)
    seen = season[season["driver_weeks"] > 0]
    true = seen["depot"].map(truth.blocks_per_driver) * seen["week_of_year"].map(truth.season)
    rel = (seen["blocks_per_driver"] / true - 1).abs()
    assert rel.mean() < MEAN_RTOL and rel.max() < MAX_RTOL
    big = tenure[tenure["driver_weeks"] >= 1000]
    assert len(big) >= 9
    assert (big["index"] - 1).abs().max() < TENURE_ATOL


def test_no_season_gives_a_flat_index():
    log, _ = generate_activity_log(8000, seed=4, depots=2, weeks=60)
    season, _ = supply_indices(log)
    seen = season[season["driver_weeks"] > 0]
    assert (seen["index"] - 1).abs().max() < 0.08
    assert (season.loc[season["driver_weeks"] == 0, "index"] == 1.0).all()  # weeks of year not seen: the constant


def test_supply_table_maps_horizon_weeks_to_weeks_of_year():
    """2027-01-04 is the Monday of ISO week 1 of 2027, so horizon week t is week of year t;
    from 2027-12-27 (week 52) the second week is 2028's week 1."""
    season = pd.DataFrame({"depot": ["A"] * 53, "week_of_year": range(1, 54), "index": np.linspace(0.5, 1.5, 53)})
    t = supply_table(season, {"A": 4.0}, "2027-01-04", 3)
    assert t["blocks_per_driver"].tolist() == pytest.approx([4.0 * season["index"][i] for i in range(3)])
    t = supply_table(season, {"A": 4.0, "B": 2.0}, "2027-12-27", 2)
    assert t.loc[t["depot"] == "A", "blocks_per_driver"].tolist() == pytest.approx([4.0 * season["index"][51],
                                                                                   4.0 * season["index"][0]])
    assert t.loc[t["depot"] == "B", "blocks_per_driver"].tolist() == [2.0, 2.0]  # no index: the constant


def test_build_instance_with_supply(build_inputs):  # noqa: F811 - the fixture
    d = build_inputs
    (d / "season.csv").write_text("depot,week_of_year,index\nD001,1,1.2\nD001,2,0.8\n")
    r = build_cli(d, supply="season.csv")
    assert r.exit_code == 0, r.output
    inst = optplan.load_instance(d / "o")
    assert inst.model_data().supply[0].tolist() == pytest.approx([3.0 * 1.2, 3.0 * 0.8])
    assert optplan.solve(inst).status.optimal
    (d / "bad.csv").write_text("depot,week_of_year,index\nD001,54,1.2\nD001,2,-1\n")
    import shutil

    shutil.rmtree(d / "o")
    r = build_cli(d, supply="bad.csv")
    assert r.exit_code == 2, r.output
    lines = r.output.splitlines()
    assert any("bad.csv:2" in line and "week_of_year" in line for line in lines), r.output
    assert any("bad.csv:3" in line and "index" in line for line in lines), r.output


def test_estimate_retention_writes_the_supply_tables(tmp_path):
    log, _ = generate_activity_log(3000, seed=1, depots=2, weeks=30, seasonal_amplitude=0.2)
    log.to_csv(tmp_path / "activity.csv", index=False)
    r = CliRunner().invoke(main, ["estimate", "retention", str(tmp_path / "activity.csv"), "--out", str(tmp_path / "est"),
                                  "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    season = pd.read_csv(tmp_path / "est" / "supply_season.csv")
    assert set(season.columns) >= {"depot", "week_of_year", "index", "blocks_per_driver", "driver_weeks"}
    assert len(season) == 2 * 53
    assert (tmp_path / "est" / "supply_tenure.csv").exists()
    assert "by week of year" in r.output


def test_build_instance_with_supply_in_long_lead_periods(build_inputs):  # noqa: F811 - the fixture
    """Settings with horizon.periods: the seasonal supply is averaged over each period; periods
    that do not add up to the weeks are one line naming the settings file (no traceback)."""
    d = build_inputs
    (d / "season.csv").write_text("depot,week_of_year,index\nD001,1,1.2\nD001,2,0.8\n")
    (d / "p.yaml").write_text("name: t\nhorizon: {weeks: 2, start_date: '2027-01-04', periods: [{weeks: 2, count: 1}]}\n"
                              "penalties: {unserved_cost_per_block: 100}\n")
    (d / "dem.csv").write_text("depot,week,scenario,blocks\nD001,1,S1,63\n")
    r = build_cli(d, supply="season.csv", settings="p.yaml", demand="dem.csv")
    assert r.exit_code == 0, r.output
    inst = optplan.load_instance(d / "o")
    assert inst.model_data().supply[0].tolist() == pytest.approx([3.0 * (1.2 + 0.8) / 2])
    import shutil

    shutil.rmtree(d / "o")
    (d / "bad.yaml").write_text("name: t\nhorizon: {weeks: 2, start_date: '2027-01-04', periods: [{weeks: 1, count: 1}]}\n"
                                "penalties: {unserved_cost_per_block: 100}\n")
    r = build_cli(d, supply="season.csv", settings="bad.yaml", demand="dem.csv")
    assert r.exit_code == 2 and "horizon.periods" in r.output and "Traceback" not in r.output, r.output
