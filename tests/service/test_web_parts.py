"""The workspace's parts that need no browser (issue #28): the what-if form's fields and the
changes a submitted form makes, checked by applying them to the instance the CLI's way."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

import optplan
from optplan.io.whatif import parse_assignment
from optplan.service.jobs import check_dataset
from optplan.service.web import change_words, what_if_changes, what_if_fields


@pytest.fixture(scope="module")
def world():
    folder = REPO / "instances" / "world"
    return optplan.load_instance(folder), check_dataset("instance", folder).meta


def _labels(fields):
    return {f["name"]: f["label"] for f in fields}


def test_the_form_has_a_field_for_every_lever_with_its_current_value(world):
    _, meta = world
    fields = what_if_fields(meta, "USD")
    labels = _labels(fields)
    regions, countries = meta["regions"], meta["country_currency"]
    assert len(regions) > 1 and set(countries) == {"US", "DE"}
    for r in regions:
        assert f"budget_region-{r}" in labels and f"demand_region-{r}" in labels
    assert labels["budget_country-DE"] == "Budget of country DE (EUR)"
    assert labels["channel_cost-job_board-DE"] == "Cost of an applicant through job_board in DE (EUR)"
    assert {"budget_total", "budget_weekly", "demand_scale", "service_level", "driver_utilisation", "risk_weight",
            "time_limit"} <= set(labels)
    now = {f["name"]: f["now"] for f in fields}
    assert now["budget_total"] == "15,542.00 USD" and now["budget_weekly"] == "1,793.00 USD"
    assert len(labels) == len(set(labels.values())), "two fields share a label"


def test_a_submitted_form_changes_exactly_what_it_names(world):
    inst, meta = world
    fields = what_if_fields(meta, "USD")
    region = meta["regions"][0]
    form = {"budget_total": "12,000", "budget_country-DE": "3 000 EUR", f"demand_region-{region}": "110 %",
            "channel_cost-referral": "45", "service_level": "95", "risk_weight": "20", "time_limit": "30",
            "driver_utilisation": ""}
    changes, options, problems = what_if_changes(form, fields)
    assert problems == []
    assert options == {"cvar_weight": "0.2", "time_limit": "30"}
    in_region = [d for d, r in meta["region_of"].items() if r == region]
    assert changes == {"budgets.total": 12000.0, "budgets.countries.DE": 3000.0,
                       **{f"demand[{d}].blocks": "*1.1" for d in in_region},
                       "channels[referral].cost_per_applicant": 45.0, "targets.service_level": 0.95}
    # applied as the service applies them (the CLI's --set), the demand moves only in that region
    parsed = dict(parse_assignment(f"{k}={v}") for k, v in changes.items())
    changed = inst.with_changes(parsed)
    a, b = inst.tables["demand"], changed.tables["demand"]
    factor = np.where(a["depot"].isin(in_region), 1.1, 1.0)
    np.testing.assert_allclose(b["blocks"].to_numpy(float), factor * a["blocks"].to_numpy(float), rtol=1e-12)
    assert changed.manifest.budgets.countries == {"DE": 3000.0} and changed.manifest.targets.service_level == 0.95
    words = change_words(changes, "USD")
    assert "total budget: 12,000.00 USD" in words and "service level target: 95.00 %" in words
    assert any(w.startswith(f"demand at {in_region[0]}") and w.endswith("110% of the instance's") for w in words)


def test_what_cannot_be_read_is_one_line_per_field_in_the_forms_words(world):
    _, meta = world
    fields = what_if_fields(meta, "USD")
    changes, options, problems = what_if_changes({"budget_total": "lots", "demand_scale": "-5", "time_limit": "1e999"},
                                                 fields)
    assert problems == ["Total budget (USD): expected a number, found 'lots'",
                        "Demand everywhere, % of the forecast: expected a number of at least 0, found '-5'",
                        "Time limit (seconds): expected a number, found '1e999'"]


def test_the_comparison_puts_the_largest_differences_first_and_a_new_depot_on_top():
    from types import SimpleNamespace as NS

    import optplan.service.web as web
    from formulations.data import Decisions

    def plan(depots, x, z, total=10.0):
        return NS(data=NS(depots=depots, channels=("ref", "ads")), currency="EUR", cost={"total": total},
                  kpis={"service_level": 0.9}, decisions=Decisions(np.asarray(x, float)[:, :, None],
                                                                   np.asarray(z, float)[:, None, None]))

    a = plan(("D1", "D2", "D3"), [[1, 1], [1, 1], [1, 1]], [0, 0, 0])
    b = plan(("D1", "D2", "D3", "D4"), [[1, 2], [9, 1], [1, 1], [2, 2]], [0, 0, 500, 0], total=12.0)
    sections = web._comparison(optplan.compare(a, b, ("x", "y")), "x", "y")
    assert [row[0] for row in sections["depots"]] == ["D4", "D2", "D1", "D3"]  # D3: same applicants, more spend
    assert sections["depots"][1][1:4] == ("2.00", "10.0", "8.00")
    assert sections["depots"][3][4:] == ("0.00", "500.00", "500.00")
    assert [row[0] for row in sections["channels"]] == ["ref", "ads"]  # +9 then +2
    assert sections["currency"] == "EUR"
    assert [row[3] for row in sections["headline"]] == ["2.00 EUR", "0.00 %"]  # the cost first, then service


def test_a_percentage_above_100_is_refused_in_the_forms_words(world):
    _, meta = world
    _, _, problems = what_if_changes({"service_level": "150", "risk_weight": "101 %"}, what_if_fields(meta, "USD"))
    assert problems == ["Service level target at every depot, %: expected a percentage from 0 to 100, found '150'",
                        "Weight on the cost of the worst weeks, % (0: the expected cost only): expected a percentage "
                        "from 0 to 100, found '101 %'"]


@pytest.mark.parametrize("name", ["demo", "world"])
def test_a_plan_read_back_from_its_files_is_the_plan(name, tmp_path):
    """What the service compares (the plan as its files state it, without loading the large
    demand table) against the plan in memory: every decision row the files give matches to the
    files' 10 significant digits; a world instance's channels are its channel@country ids."""
    from optplan.service.plans import plan_of_outputs

    folder = REPO / "instances" / name
    plan = optplan.solve(optplan.load_instance(folder))
    plan.write(tmp_path / "out")
    read = plan_of_outputs(folder, tmp_path / "out")
    table = optplan.compare(plan, read).dropna(subset=["a", "b"])
    decisions = table[table["kind"] == "decision"]
    assert len(decisions) >= len(read.data.depots) * 2
    np.testing.assert_allclose(decisions["b"], decisions["a"], rtol=1e-8, atol=1e-6)
    assert set(read.data.channels) <= set(plan.data.channels)


def test_the_recommendation_sorts_filters_and_rounds_whole_numbers(tmp_path):
    """Applicants per depot and channel in whole numbers that add up to each row's rounded
    total, sorted by any column both ways; incentives per depot in whole currency units."""
    import pandas as pd

    from optplan.service.web import _recommendation

    pd.DataFrame({"depot": ["A", "A", "B", "B", "C"], "channel": ["ref", "ref", "ref", "ads", "ref"],
                  "week": [1, 2, 1, 2, 2], "applicants": [1.4, 1.4, 5.0, 0.6, 2.5]}).to_csv(tmp_path / "applicants.csv",
                                                                                          index=False)
    pd.DataFrame({"depot": ["A", "B", "C"], "region": ["N", "S", "S"]}).to_csv(tmp_path / "drivers.csv", index=False)
    pd.DataFrame({"depot": ["B", "B"], "week": [1, 2], "spend": [100.7, 50.4], "currency": "EUR"}).to_csv(
        tmp_path / "incentives.csv", index=False)
    meta = {"start_date": "2027-01-04"}
    rec = _recommendation(tmp_path, meta, "", "", 1)
    assert [(r["depot"], r["channel"], r["weeks"], r["total"]) for r in rec["rows"]] == [
        ("B", "ref", [5, 0], 5), ("A", "ref", [2, 1], 3), ("C", "ref", [0, 2], 2), ("B", "ads", [0, 1], 1)]
    assert rec["weeks"] == ["2027-01-04", "2027-01-11"] and rec["total"] == 11
    by_week2 = _recommendation(tmp_path, meta, "", "", 1, sort="week-2", desc=True)["rows"]
    assert [(r["depot"], r["channel"]) for r in by_week2][:1] == [("C", "ref")]
    by_depot = _recommendation(tmp_path, meta, "", "", 1, sort="depot", desc=False)["rows"]
    assert [r["depot"] for r in by_depot] == ["A", "B", "B", "C"]
    south = _recommendation(tmp_path, meta, "", "S", 1)
    assert {r["depot"] for r in south["rows"]} == {"B", "C"} and south["total"] == 8
    assert south["incentives"]["rows"] == [{"depot": "B", "weeks": [101, 50], "total": 151}]
    assert south["incentives"]["currency"] == "EUR"
    assert _recommendation(tmp_path, meta, "", "N", 1)["incentives"]["rows"] == []
