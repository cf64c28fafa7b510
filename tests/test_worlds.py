"""Stress worlds in `simulate` (issue #32 part 3): each world's paths by an independent
route from the sampler's, and every policy scored on each with paired differences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO

import optplan
from optplan.cli import main
from optplan.errors import InstanceError, OptionError
from optplan.evaluation.policy import most_robust, reforecast, simulate, summarize_worlds
from optplan.evaluation.sampling import ScenarioPosterior, _log_mean_factor, reforecast_level, sample_demand
from optplan.evaluation.worlds import DEFAULT_WORLDS, FAT_SHARE, dirichlet_probabilities, parse_worlds, sample_world
from optplan.planning.replan import remaining_data

SIGMA, AR = 0.05, 0.5
#: Monte Carlo checks: within this many standard errors.
MC_Z = 4.0


@pytest.fixture(scope="module")
def data(demo_path):
    return optplan.load_instance(demo_path).model_data()


def _noise(data, paths, seed, n):
    """log of each path's noise factor: the paths over their scenarios' demand (sigma 0, same seed)."""
    return np.log(paths / sample_demand(data, n, np.random.default_rng(seed), 0.0, AR))


def test_worlds_are_parsed_and_bad_ones_named():
    ws = parse_worlds("nominal, noise:3,fat:4,shift:0.25@8:D001+D003,probabilities:0.5")
    assert [(w.kind, w.value, w.week, w.depots) for w in ws] == [
        ("nominal", 0.0, 0, ()), ("noise", 3.0, 0, ()), ("fat", 4.0, 0, ()), ("shift", 0.25, 8, ("D001", "D003")),
        ("probabilities", 0.5, 0, ())]
    assert tuple(w.name for w in parse_worlds("all")) == DEFAULT_WORLDS
    for bad in ("noise", "history", "history:a.csv:D001", "noise:-1", "shift:0.25", "shift:-1.5@3", "shift:0.2@0",
                "weird:1", "nominal:2", "fat:inf",
                "nominal,nominal", ""):
        with pytest.raises(OptionError):
            parse_worlds(bad)


def test_nominal_noise_and_shift_worlds_by_hand(data):
    n, seed = 300, 11
    nominal = sample_world(data, parse_worlds("nominal")[0], n, seed, SIGMA, AR)
    assert np.array_equal(nominal, sample_demand(data, n, np.random.default_rng(seed), SIGMA, AR))
    # noise:3: the same normals, three times as wide: (log f + (3s)^2 / 2) = 3 (log f_nominal + s^2 / 2)
    wide = sample_world(data, parse_worlds("noise:3")[0], n, seed, SIGMA, AR)
    np.testing.assert_allclose(_noise(data, wide, seed, n) + (3 * SIGMA) ** 2 / 2,
                               3 * (_noise(data, nominal, seed, n) + SIGMA**2 / 2), atol=1e-12)
    # shift:0.25@3 at D002: exactly 1.25 x the nominal paths there from week 3, equal elsewhere
    shifted = sample_world(data, parse_worlds("shift:0.25@3:D002")[0], n, seed, SIGMA, AR)
    d = data.depots.index("D002")
    ratio = shifted / nominal
    assert np.allclose(ratio[:, d, 2:], 1.25, rtol=1e-14) and np.allclose(ratio[:, d, :2], 1.0)
    assert np.array_equal(np.delete(shifted, d, axis=1), np.delete(nominal, d, axis=1))
    # without depots: every other depot, from the first
    half = sample_world(data, parse_worlds("shift:0.5@1")[0], n, seed, SIGMA, AR) / nominal
    assert np.allclose(half[:, ::2, :], 1.5) and np.allclose(half[:, 1::2, :], 1.0)
    with pytest.raises(OptionError):
        sample_world(data, parse_worlds("shift:0.1@99")[0], n, seed, SIGMA, AR)
    with pytest.raises(OptionError):
        sample_world(data, parse_worlds("shift:0.1@2:D999")[0], n, seed, SIGMA, AR)


def test_probabilities_world_draws_the_other_probabilities(data):
    q = dirichlet_probabilities(data.probability, 1.0, 5)
    assert q.sum() == pytest.approx(1.0) and not np.allclose(q, data.probability / data.probability.sum(), atol=0.02)
    world = sample_world(data, parse_worlds("probabilities:1")[0], 200, 5, SIGMA, AR)
    same = sample_demand(replace(data, probability=q), 200, np.random.default_rng(5), SIGMA, AR)
    assert np.array_equal(world, same)
    # far more concentrated: near the instance's
    near = dirichlet_probabilities(data.probability, 1e6, 5)
    np.testing.assert_allclose(near, data.probability / data.probability.sum(), atol=2e-3)


def test_fat_tails_keep_the_mean_and_variance_and_raise_the_kurtosis(data):
    # the exact log-mean: with K = 1 the innovations are normal and it is sigma^2 / 2 in every week
    np.testing.assert_allclose(_log_mean_factor(SIGMA, AR, (FAT_SHARE, 1.0), 30), SIGMA**2 / 2, rtol=1e-12)
    n, seed = 4000, 3
    fat = sample_world(data, parse_worlds("fat:4")[0], n, seed, SIGMA, AR)
    f = np.exp(_noise(data, fat, seed, n))
    se = f.std() / np.sqrt(f.size / 12)  # the weeks and depots of a path are correlated: a generous standard error
    assert abs(f.mean() - 1.0) < MC_Z * se
    log_f = np.log(f)
    assert log_f.std() == pytest.approx(SIGMA, rel=0.05)  # the variance kept
    z = (log_f - log_f.mean()) / log_f.std()
    nominal = _noise(data, sample_world(data, parse_worlds("nominal")[0], n, seed, SIGMA, AR), seed, n)
    zn = (nominal - nominal.mean()) / nominal.std()
    assert (z**4).mean() > 3.0 + 2.0 and abs((zn**4).mean() - 3.0) < 0.3  # fat against normal tails


def _history_csv(path, weeks, stores):
    """A weekly history (optplan forecast's format) of ``stores`` {id: (first year's level,
    later level)}: the first 52 weeks at one level, the rest at the other."""
    start = pd.Timestamp("2022-01-03")
    rows = [{"store": j, "date": (start + pd.Timedelta(weeks=w)).strftime("%Y-%m-%d"),
             "weekly_sales": before if w < 52 else after}
            for j, (before, after) in stores.items() for w in range(weeks)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_history_world_by_hand(data, tmp_path):
    """Two stores: one 10 % up from its first year on, one 10 % down; every later week's actual /
    seasonal-naive forecast is 1.1 or 0.9 (mean 1), so each path's depot has its scenario's demand
    times 1.1 or 0.9 every week, both occur, and the scenarios are the other worlds' draws (common
    random numbers). A history too short for the horizon is an option error, before any draw."""
    csv = _history_csv(tmp_path / "h.csv", 52 + data.n_weeks + 4, {"up": (100.0, 110.0), "down": (100.0, 90.0)})
    (world,) = parse_worlds(f"history:{csv}")
    assert world.kind == "history" and "real forecast errors" in world.describe()
    n = 200
    paths = sample_world(data, world, n, 4, SIGMA, AR)
    factor = paths / sample_demand(data, n, np.random.default_rng(4), 0.0, AR)
    per_depot = factor[:, :, 0]
    assert np.allclose(factor, per_depot[:, :, None])  # one store per path and depot: the same ratio every week
    assert np.isin(np.round(per_depot, 12), [1.1, 0.9]).all()
    share = (np.round(per_depot, 12) == 1.1).mean()
    assert abs(share - 0.5) <= MC_Z * np.sqrt(0.25 / per_depot.size)
    short = _history_csv(tmp_path / "s.csv", 52 + data.n_weeks - 1, {"up": (100.0, 110.0)})
    with pytest.raises(OptionError, match="history with a store of at least"):
        sample_world(data, parse_worlds(f"history:{short}")[0], n, 4, SIGMA, AR)
    with pytest.raises(InstanceError) as err:  # optplan forecast's one line per problem
        sample_world(data, parse_worlds(f"history:{tmp_path / 'none.csv'}")[0], n, 4, SIGMA, AR)
    assert "none.csv" in str(err.value)
    r = CliRunner().invoke(main, ["simulate", str(REPO / "instances" / "demo"), "--out", str(tmp_path / "o"),
                                  "--worlds", f"nominal,history:{short}"])
    assert r.exit_code == 2 and "history with a store of at least" in r.output and "Traceback" not in r.output


def test_the_history_world_of_the_shipped_stores_has_mean_one_and_real_tails(data):
    """The shipped 30 stores: the factors over the scenarios have mean 1 (within Monte Carlo
    error) and a log-sd above the nominal world's 5 % (real forecast errors, holidays that move)."""
    n = 300
    (world,) = parse_worlds(f"history:{REPO / 'examples' / 'data' / 'walmart_store_weekly_sales_30.csv'}")
    factor = sample_world(data, world, n, 0, SIGMA, AR) / sample_demand(data, n, np.random.default_rng(0), 0.0, AR)
    per_path = factor.mean(axis=(1, 2))
    assert abs(per_path.mean() - 1.0) <= MC_Z * per_path.std() / np.sqrt(n)
    assert np.log(factor).std() > 0.06


def test_summarize_worlds_by_hand():
    paths = pd.DataFrame({"world": ["w"] * 4, "policy": ["a", "a", "b", "b"], "path": [0, 1, 0, 1],
                          "cost": [10.0, 14.0, 12.0, 12.0], "spend": 0.0, "unserved_blocks": 0.0, "idle_blocks": 0.0,
                          "surge_blocks": 0.0})
    table = summarize_worlds(paths, "USD", "b").set_index("policy")
    assert table.loc["a", "cost"] == 12.0 and table.loc["b", "cost"] == 12.0
    assert table.loc["a", "cost_minus_reference"] == 0.0  # (-2 + 2) / 2
    assert table.loc["a", "cost_minus_reference_ci95"] == pytest.approx(1.959963984540054 * np.sqrt(8) / np.sqrt(2))
    assert table.loc["a", "regret"] == 0.0 and table.loc["b", "regret"] == 0.0
    two = pd.concat([paths, paths.assign(world="v", cost=[10.0, 10.0, 11.0, 13.0])])
    t2 = summarize_worlds(two, "USD", "b")
    assert t2.set_index(["world", "policy"]).loc[("v", "b"), "regret"] == pytest.approx(0.2)
    assert most_robust(t2) == ("a", 0.0)


def test_simulate_scores_every_policy_in_every_world(data, demo_path):
    plan = optplan.solve(optplan.load_instance(demo_path), engine="highs")
    kw = dict(n_paths=20, seed=4, sigma=SIGMA, noise_ar=AR, policies=("static", "basestock"), tune_paths=10)
    worlds = {w.name: sample_world(data, w, 20, 4, SIGMA, AR) for w in parse_worlds("nominal,shift:0.3@4")}
    frame = simulate(data, plan.decisions, worlds=worlds, **kw)
    assert list(frame.columns[:2]) == ["world", "policy"]
    assert frame.groupby(["world", "policy"]).size().to_dict() == {
        ("nominal", "basestock"): 20, ("nominal", "static"): 20, ("shift:0.3@4", "basestock"): 20,
        ("shift:0.3@4", "static"): 20}
    # the nominal world is the sampler's own paths: the same costs as a simulation without worlds
    alone = simulate(data, plan.decisions, **kw)
    nominal = frame[frame["world"] == "nominal"].drop(columns="world").reset_index(drop=True)
    pd.testing.assert_frame_equal(nominal, alone)
    # more demand from week 4 at half the depots: following today's plan costs more
    static = frame[frame["policy"] == "static"].groupby("world")["cost"].mean()
    assert static["shift:0.3@4"] > static["nominal"]


def test_simulate_worlds_from_the_command_line(demo_path, tmp_path):
    def run(*extra):
        return CliRunner().invoke(main, ["simulate", str(demo_path), "--out", str(tmp_path / "s"), "--paths", "10",
                                         "--tune-paths", "5", "--policies", "static,basestock", *extra])

    r = run("--worlds", "nominal,fat:4")
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "s" / "simulation.csv")
    assert set(table["world"]) == {"nominal", "fat:4"} and (table["reference"] == "basestock").all()
    assert "world fat:4: fat tails" in r.output and "most robust over these worlds: " in r.output
    for args, words in ((("--worlds", "noise:0"), "noise:0"), (("--worlds", "nominal", "--reference", "rolling"),
                                                                 "one of the simulated policies"),
                        (("--reference", "static"), "--worlds with it"),
                        (("--worlds", "nominal,shift:0.2@99"), "a shift week within the horizon (1..12)")):
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert words in r.output and "Traceback" not in r.output
        assert "solving the static plan" not in r.output  # refused before any solve


# ---------------------------------------------------------------- re-forecasting (issue #32 part 1)


def _mean(data, weeks):
    return np.einsum("dws,s->dw", data.demand[:, weeks, :], data.probability / data.probability.sum())


def test_the_level_by_hand(data):
    D = len(data.depots)
    weeks = np.arange(4)
    mean = _mean(data, weeks)  # (D, 4)
    flat = (1.25 * mean)[None]  # 25 % above the forecast in every week
    assert np.allclose(reforecast_level(data, flat), 1.25) and np.allclose(reforecast_level(data, flat, noise_ar=0.5), 1.25)
    # only the last 2 weeks count with weeks=2
    two = np.concatenate([mean[:, :2], 1.1 * mean[:, 2:]], axis=1)[None]
    assert np.allclose(reforecast_level(data, two, weeks=2), 1.1)
    # logs 0.3 and 0.1 over two weeks: mean 0.2, spread variance 0.02, of the mean 0.02 / 2 x 3 (AR 0.5) = 0.03:
    # shrunk by 1 - 0.03 / 0.04 = 0.25 to 0.05
    pair = (mean[:, :2] * np.exp([0.3, 0.1])[None, :])[None]  # the first two weeks seen
    np.testing.assert_allclose(reforecast_level(data, pair, weeks=2), np.exp(0.2))
    np.testing.assert_allclose(reforecast_level(data, pair, weeks=2, noise_ar=0.5), np.exp(0.05))
    # no weeks seen: as forecast
    assert np.array_equal(reforecast_level(data, np.zeros((1, D, 0))), np.ones((1, D)))


def test_remaining_data_takes_the_level(data):
    D = len(data.depots)
    level = np.linspace(0.8, 1.3, D)
    args = (data, 3, np.full(D, 10.0), np.zeros((D, data.n_weeks)), 0.0, {})
    np.testing.assert_allclose(remaining_data(*args, level=level).demand, remaining_data(*args).demand * level[:, None, None])


def _seen(data, paths, t):
    post = ScenarioPosterior(data, paths.shape[0], SIGMA, AR)
    for w in range(t):
        post.update(paths[:, :, w])
    return post


def test_reforecast_on_a_scenario_is_that_scenario(data):
    """A path equal to a scenario (times the sampler's noise): the re-forecast of the weeks ahead
    is that scenario's, within the forecast's noise (the check never fires, the weights find it)."""
    rng = np.random.default_rng(8)
    S = len(data.scenarios)
    n, t = 3 * S, 5
    which = np.repeat(np.arange(S), 3)
    e = rng.standard_normal((n, len(data.depots), data.n_weeks))
    for w in range(1, data.n_weeks):  # the sampler's AR(1) noise
        e[:, :, w] = AR * e[:, :, w - 1] + np.sqrt(1 - AR**2) * e[:, :, w]
    paths = np.transpose(data.demand[:, :, which], (2, 0, 1)) * np.exp(SIGMA * e - SIGMA**2 / 2)
    post, level, left = reforecast(data, _seen(data, paths, t), paths[:, :, :t], np.zeros(n, bool))
    assert level is None and not left.any()
    ahead = np.einsum("ns,dws->ndw", post, data.demand[:, t:, :])
    truth = np.transpose(data.demand[:, t:, which], (2, 0, 1))
    np.testing.assert_allclose(ahead, truth, rtol=3 * SIGMA)


def test_reforecast_after_a_level_shift_finds_the_new_level(data):
    """Demand 25 % above the path's scenario at the first depot from week 3, checked week by week
    as the policy does: by week 9 at least 90 % of paths show a new level there (the demo's
    scenarios lie +-30 % apart, so the most likely one absorbs part of a shift at one depot: about
    60 % at week 5, the first with three weeks after it, 80 % at week 7) and the re-forecast of
    that depot is about 1.25 x the forecast, the others' about 1."""
    from optplan.evaluation.sampling import ScenarioPosterior

    n, t = 200, 9
    paths = sample_world(data, parse_worlds("shift:0.25@3:D001")[0], n, 2, SIGMA, AR)
    seen, left = ScenarioPosterior(data, n, SIGMA, AR), np.zeros(n, bool)
    for w in range(1, t + 1):
        seen.update(paths[:, :, w - 1])
        post, level, left = reforecast(data, seen, paths[:, :, :w], left)
        if w < 5:
            assert not left.any()  # fewer than LEVEL_WEEKS weeks after the shift: none yet
    assert left.mean() >= 0.9, left.mean()
    lv = level[left]
    assert np.median(lv[:, 0]) == pytest.approx(1.25, rel=0.05)  # the last 4 weeks are all after the shift
    assert np.median(lv[:, 1:]) == pytest.approx(1.0, abs=0.05)
    assert np.allclose(post[left], data.probability / data.probability.sum())  # the instance's weights again
