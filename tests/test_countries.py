"""Several countries and currencies in one instance (issue #14 part 1): money is stated in
each country's currency and converted once, at loading, to the reporting currency
(horizon.currency); the formulation never sees a currency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import OBJ_RTOL

import optplan
from optplan.errors import InstanceError
from optplan.io.instance import from_tables

#: The issue's bound on "the same plan and cost" two ways.
SAME_ATOL = 1e-9
EUR_IN_USD = 1.1
EU_DEPOTS = ("D004", "D005")


def two_countries(demo, eu_scale: float = 1.0, eu_currency: str = "EUR", fx: float = EUR_IN_USD):
    """The demo with depots D004-D005 in the EU (region R02, a budget there), their money in
    EUR: unserved 150 EUR/block, idle 20 EUR/block, surge 90 EUR/block, job_board 30
    EUR/applicant, incentives as shipped (read as EUR), region budget 3,000 EUR.
    ``eu_scale`` multiplies every EU money figure (and divides blocks per currency unit)."""
    manifest = demo.manifest.model_dump(mode="json")
    manifest["budgets"]["regions"] = {"R02": 3000.0 * eu_scale}
    manifest["horizon"]["fx_date"] = "2026-12-01"
    tables = {k: v.copy() for k, v in demo.tables.items()}
    dep = tables["depots"]
    eu = dep["depot"].isin(EU_DEPOTS)
    dep["country"] = np.where(eu, "EU", "US")
    dep.loc[eu, "region"] = "R02"
    tables["countries"] = pd.DataFrame({
        "country": ["US", "EU"], "currency": ["USD", eu_currency], "fx_rate": [1.0, fx],
        "unserved_cost_per_block": [np.nan, 150.0 * eu_scale], "idle_cost_per_block": [np.nan, 20.0 * eu_scale],
        "surge_cost_per_block": [np.nan, 90.0 * eu_scale]})
    tables["channel_costs"] = pd.DataFrame({"country": ["EU"], "channel": ["job_board"],
                                            "cost_per_applicant": [30.0 * eu_scale]})
    inc = tables["incentives"]
    at_eu = inc["depot"].isin(EU_DEPOTS)
    inc.loc[at_eu, "max_spend"] = inc.loc[at_eu, "max_spend"] * eu_scale
    inc.loc[at_eu, "blocks_per_currency"] = inc.loc[at_eu, "blocks_per_currency"] / eu_scale
    return from_tables(manifest, tables)


@pytest.fixture(scope="module")
def demo(demo_path):
    return optplan.load_instance(demo_path)


def test_conversion_by_hand(demo):
    """The arrays the formulation reads, worked by hand: EU penalties x 1.1 at D004-D005 only,
    job_board@EU at 30 x 1.1 = 33 USD and open to EU depots only, incentive widths x 1.1 and
    rates / 1.1 there, the EU region budget 3,000 x 1.1 = 3,300 USD."""
    data = two_countries(demo).model_data()
    eu = np.isin(np.array(data.depots), EU_DEPOTS)
    np.testing.assert_allclose(data.recourse_prices()[1], np.where(eu, 165.0, 160.0))
    np.testing.assert_allclose(data.recourse_prices()[2], np.where(eu, 22.0, 25.0))
    np.testing.assert_allclose(data.recourse_prices()[0], np.where(eu, 99.0, 95.0))
    c = {name: i for i, name in enumerate(data.channels)}
    assert data.cost_per_applicant[c["job_board@EU"]] == pytest.approx(33.0)
    assert data.cost_per_applicant[c["job_board@US"]] == pytest.approx(25.0)
    assert data.cost_per_applicant[c["referral@EU"]] == pytest.approx(40.0)  # no EU row: the channel table's USD
    assert (data.applicant_cap[eu][:, c["job_board@US"]] == 0).all() and (data.applicant_cap[~eu][:, c["job_board@EU"]] == 0).all()
    base = demo.model_data()
    np.testing.assert_allclose(data.incentive_width[eu], base.incentive_width[eu] * EUR_IN_USD)
    np.testing.assert_allclose(data.incentive_rate[eu], base.incentive_rate[eu] / EUR_IN_USD)
    np.testing.assert_allclose(data.incentive_width[~eu], base.incentive_width[~eu])
    assert data.budget_region == {"R02": pytest.approx(3300.0)}
    assert data.has_depot_prices


def test_stated_in_euros_or_converted_by_hand_the_plan_is_the_same(demo):
    """Issue #14's acceptance: every EU money figure multiplied by its exchange rate and marked
    in the reporting currency (fx 1) gives the same plan and cost (1e-9)."""
    in_eur = optplan.solve(two_countries(demo))
    in_usd = optplan.solve(two_countries(demo, eu_scale=EUR_IN_USD, eu_currency="USD", fx=1.0))
    assert in_eur.status.optimal and in_usd.status.optimal
    assert in_eur.status.objective == pytest.approx(in_usd.status.objective, rel=SAME_ATOL)
    np.testing.assert_allclose(in_eur.decisions.applicants, in_usd.decisions.applicants, atol=SAME_ATOL)
    np.testing.assert_allclose(in_eur.decisions.incentive_spend, in_usd.decisions.incentive_spend, atol=SAME_ATOL)
    # and the countries change the plan (the test could fail): prices and costs differ from the demo's
    assert abs(in_eur.status.objective - optplan.solve(demo).status.objective) > 1.0


def test_each_depots_prices_two_ways(demo):
    """With per-depot prices: the LP's optimum (aggregated recourse, HiGHS) equals the
    evaluator's expected cost of its plan (closed-form recourse at each depot's prices) and
    the extensive form's optimum (every scenario's rows)."""
    inst = two_countries(demo)
    plan = optplan.solve(inst)
    ev = optplan.evaluate(plan, inst)
    assert ev.expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    assert ev.violations == {}
    extensive = optplan.solve(inst, formulation="extensive")
    assert extensive.status.objective == pytest.approx(plan.status.objective, rel=OBJ_RTOL)


def test_bad_country_tables_are_one_line_each(demo):
    inst = two_countries(demo)
    tables = {k: v.copy() for k, v in inst.tables.items()}
    tables["depots"].loc[0, "country"] = "XX"
    tables["countries"].loc[1, "currency"] = "euro"
    tables["channel_costs"].loc[0, "channel"] = "billboard"
    manifest = inst.manifest.model_dump(mode="json")
    manifest["budgets"]["regions"] = {"R01": 100.0}
    tables["depots"].loc[1, "country"] = "EU"  # R01 now spans both countries
    with pytest.raises(InstanceError) as err:
        from_tables(manifest, tables)
    text = str(err.value)
    for expected in ("depots.csv:2: field 'country'", "unknown country 'XX'", "countries.csv:3: field 'currency'",
                     "channel_costs.csv:2: field 'channel'", "budgets.regions.R01", "a region within one country"):
        assert expected in text, (expected, text)


def test_write_and_read_back(demo, tmp_path):
    inst = two_countries(demo)
    folder = inst.write(tmp_path / "two")
    back = optplan.load_instance(folder)
    assert (folder / "countries.csv").is_file() and (folder / "channel_costs.csv").is_file()
    a, b = inst.model_data(), back.model_data()
    assert a.channels == b.channels
    np.testing.assert_allclose(a.recourse_prices()[1], b.recourse_prices()[1])
    assert str(back.manifest.horizon.fx_date) == "2026-12-01"


def test_every_engine_takes_each_depots_prices(demo):
    """The DP (per-depot recourse curves at each depot's prices) within 2% of the LP, evaluated
    by the same kernel; the depot decomposition's bound and master bracket the LP optimum."""
    from optplan.solvers.base import Deadline, SolveOptions
    from optplan.solvers.decompose import DecomposeEngine

    inst = two_countries(demo)
    lp = optplan.solve(inst).status.objective
    dp = optplan.solve(inst, engine="dp")
    assert optplan.evaluate(dp, inst).expected_cost == pytest.approx(lp, rel=0.02)
    r = DecomposeEngine(backend="serial").solve(inst.model_data(), SolveOptions(), Deadline(None))
    assert r.status.bound <= lp * (1 + OBJ_RTOL) and r.status.objective >= lp * (1 - OBJ_RTOL)


def test_plans_show_spend_in_both_currencies(demo, tmp_path):
    """spend_by_country: reporting-currency spend of each country's depots, and the same
    divided by the rate in the local currency; the summary says both."""
    inst = two_countries(demo)
    plan = optplan.solve(inst)
    table = plan.spend_by_country.set_index("country")
    region = plan.spend_by_region.set_index("region")
    assert table.loc["EU", "total"] == pytest.approx(region.loc["R02", "total"])  # EU depots are region R02
    assert table.loc["EU", "total_local"] == pytest.approx(table.loc["EU", "total"] / EUR_IN_USD)
    assert table.loc["EU", "local_currency"] == "EUR" and table.loc["US", "total_local"] == pytest.approx(table.loc["US", "total"])
    assert "EU: spend" in plan.text_summary() and "EUR (1 EUR = 1.1 USD)" in plan.text_summary()
    plan.write(tmp_path / "p")
    assert (tmp_path / "p" / "spend_by_country.csv").is_file()
    assert "spend_by_country.csv" not in optplan.solve(demo).tables()


def test_the_generator_makes_countries_with_their_own_peaks(tmp_path):
    """`generate --countries US,DE`: German depots peak in Easter week (28 March 2027), US
    depots in Thanksgiving week (25 November 2027), relative to the week before; ratios
    between the countries cancel the network-wide shock. Money in EUR at the German
    depots, converted at the generator's rate."""
    from click.testing import CliRunner

    from optplan.cli import main
    from optplan.io.generate import COUNTRY_MONEY

    inst = optplan.generate_instance(depots=6, weeks=52, scenarios=20, seed=3, countries=("US", "DE"))
    data = inst.model_data()
    weekly = data.demand.mean(axis=2)  # (D, T) expected blocks
    de = np.array(data.depot_country) == "DE"
    starts = pd.date_range("2027-01-04", periods=52, freq="7D")
    easter, thanksgiving = starts.get_loc(pd.Timestamp("2027-03-22")), starts.get_loc(pd.Timestamp("2027-11-22"))

    def jump(mask, t):
        return weekly[mask, t].sum() / weekly[mask, t - 1].sum()

    assert jump(de, easter) / jump(~de, easter) > 1.15
    assert jump(~de, thanksgiving) / jump(de, thanksgiving) > 1.2
    assert set(data.depot_currency) == {"USD", "EUR"} and data.depot_fx[de][0] == COUNTRY_MONEY["DE"][1]
    assert optplan.solve(inst).status.optimal
    r = CliRunner().invoke(main, ["generate", "--countries", "US,XX", "--out", str(tmp_path / "g")])
    assert r.exit_code == 2 and "--countries" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["generate", "--countries", "US,GB", "--depots", "4", "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    assert optplan.load_instance(tmp_path / "g").tables["countries"]["currency"].tolist() == ["USD", "GBP"]


@pytest.mark.parametrize("week", [1, 6])
def test_replanning_several_countries(week):
    """instances/world re-planned from the state its plan expects at week k: the plan ahead
    costs what the original plan's remaining weeks cost there (principle of optimality), the
    state naming the instance's channels (job_board, not the model's job_board@DE)."""
    from conftest import REPO

    from formulations.data import Decisions
    from optplan.evaluation.evaluator import evaluate_decisions
    from optplan.planning.replan import expected_state, replan

    inst = optplan.load_instance(REPO / "instances" / "world")
    plan = optplan.solve(inst)
    state = expected_state(inst, plan, week)
    assert set(state.recruited["channel"]) <= set(inst.channels)
    r = replan(inst, state)
    tail = Decisions(plan.decisions.applicants[:, :, week - 1:], plan.decisions.incentive_spend[:, week - 1:, :])
    ev = evaluate_decisions(r.remaining.model_data(), tail)
    assert ev.violations == {}
    assert r.plan.status.objective == pytest.approx(ev.expected_cost, rel=OBJ_RTOL)


def with_country_budget(demo, eur: float):
    inst = two_countries(demo)
    manifest = inst.manifest.model_dump(mode="json")
    manifest["budgets"]["countries"] = {"EU": eur}
    return from_tables(manifest, dict(inst.tables))


def test_country_budgets_in_local_currency(demo):
    """budgets.countries: EU 500 EUR = 550 USD over the horizon caps the EU depots' spend (a
    row of its own, binding, with a shadow price); the arrays route and the Pyomo rows give
    the same optimum and duals; the evaluator agrees; the decomposition brackets it; the DP
    says it cannot hold it."""
    from optplan.errors import OptionError
    from optplan.solvers.base import Deadline, SolveOptions
    from optplan.solvers.decompose import DecomposeEngine

    loose = optplan.solve(two_countries(demo))
    inst = with_country_budget(demo, 500.0)
    data = inst.model_data()
    assert data.budget_country == {"EU": pytest.approx(550.0)}
    plan = optplan.solve(inst)
    eu = plan.spend_by_country.set_index("country").loc["EU"]
    assert loose.spend_by_country.set_index("country").loc["EU", "total"] > 560.0  # the cap cuts
    assert eu["total"] == pytest.approx(550.0, rel=1e-6) and eu["total_local"] == pytest.approx(500.0, rel=1e-6)
    row = plan.budgets.set_index(["scope", "key"]).loc[("country", "EU")]
    assert row["binding"] and row["shadow_price"] > 0
    assert optplan.evaluate(plan, inst).expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    pyomo = optplan.solve(inst, build="pyomo")
    assert pyomo.status.objective == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    assert pyomo.budgets.set_index(["scope", "key"]).loc[("country", "EU"), "shadow_price"] == pytest.approx(
        row["shadow_price"], rel=1e-6)
    r = DecomposeEngine(backend="serial").solve(data, SolveOptions(), Deadline(None))
    assert r.status.bound <= plan.status.objective * (1 + OBJ_RTOL) <= r.status.objective * (1 + 2 * OBJ_RTOL)
    with pytest.raises(OptionError, match="country budgets"):
        optplan.solve(inst, engine="dp")
    assert "dp" not in optplan.solve(inst, engine="auto").status.engine


@pytest.mark.parametrize("week", [4, 9])
def test_replanning_with_budgets_in_euros(demo, week):
    """Region R02's budget (3,000 EUR) and the EU's (900 EUR, binding) are in euros: a state's
    spend to date is counted in euros against them (in dollars the remaining cap would be
    too small and the original tail would break it), and the plan ahead from the state the
    plan expects costs the original plan's remaining weeks."""
    from formulations.data import Decisions
    from optplan.evaluation.evaluator import evaluate_decisions
    from optplan.planning.replan import expected_state, replan

    inst = with_country_budget(demo, 900.0)
    plan = optplan.solve(inst)
    assert plan.budgets.set_index(["scope", "key"]).loc[("country", "EU"), "binding"]
    state = expected_state(inst, plan, week)
    r = replan(inst, state)
    tail = Decisions(plan.decisions.applicants[:, :, week - 1:], plan.decisions.incentive_spend[:, week - 1:, :])
    ev = evaluate_decisions(r.remaining.model_data(), tail)
    assert ev.violations == {}
    assert r.plan.status.objective == pytest.approx(ev.expected_cost, rel=OBJ_RTOL)
