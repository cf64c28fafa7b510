"""Synthetic applicant and activity logs: the truth is right and the logs follow the format.

Tolerances (each check can fail; seeds are fixed, so a pass is reproducible):
* ``Z``: normal quantile for a single estimate against the truth, 4 standard errors
  (two-sided probability 6e-5 of a false alarm per check under the model).
* Kernel total-variation distance between an empirical kernel of n applicants and the
  truth: E[TV] <= 0.5 * sum_k sd_k (Jensen, sd_k = sqrt(p_k (1 - p_k) / n)), and TV moves
  by at most 1/n when one applicant changes, so by McDiarmid P(TV > E[TV] + t) <=
  exp(-2 n t^2): tolerance 0.5 * sum_k sd_k + sqrt(log(1 / TV_DELTA) / (2 n)).
* ``CENSORED_SHARE_TOL``: the realised share still in the funnel within 5 percentage points
  of the target (sampling noise is about sqrt(0.25 / n), 0.3 points at n = 30,000).
* Activity estimates: ratio estimators with standard errors clustered by driver, ``Z`` of them.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from optplan.estimate import synthetic as syn

Z = 4.0
TV_DELTA = 1e-6
CENSORED_SHARE_TOL = 0.05
MC_APPLICANTS = 1_000_000
#: The brief: 50,000 applicants "well under 10 s" (about 0.2 s on one core).
UNCENSORED_WEEKS = 3 * syn.MAX_WEEKS_IN_STAGE


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    return np.pad(a, (0, n - len(a)))


def tv_tolerance(p: np.ndarray, n: int) -> float:
    sd = np.sqrt(p * (1.0 - p) / n)
    return 0.5 * float(sd.sum()) + math.sqrt(math.log(1.0 / TV_DELTA) / (2.0 * n))


def mismatches(estimate: syn.FunnelTruth, truth: syn.FunnelTruth, n: dict[str, int]) -> list[str]:
    """Ways an empirical truth from ``n[channel]`` applicants disagrees with the exact one
    beyond sampling noise (empty when they agree)."""
    out = []
    for ch in truth.kernel:
        p = truth.conversion[ch]
        length = max(len(estimate.kernel[ch]), len(truth.kernel[ch]))
        kt, ke = _pad(truth.kernel[ch], length), _pad(estimate.kernel[ch], length)
        tv = 0.5 * float(np.abs(ke - kt).sum())
        if tv > tv_tolerance(kt, n[ch]):
            out.append(f"{ch}: kernel TV {tv:.5f} > {tv_tolerance(kt, n[ch]):.5f}")
        se = math.sqrt(p * (1 - p) / n[ch])
        if abs(estimate.conversion[ch] - p) > Z * se:
            out.append(f"{ch}: conversion {estimate.conversion[ch]:.5f} vs {p:.5f} (se {se:.5f})")
        k = np.arange(length)
        mean = truth.mean_weeks_to_first_block[ch]
        sd = math.sqrt(float((kt * (k - mean) ** 2).sum() / p))
        se_mean = sd / math.sqrt(p * n[ch])
        if abs(estimate.mean_weeks_to_first_block[ch] - mean) > Z * se_mean:
            out.append(f"{ch}: mean weeks {estimate.mean_weeks_to_first_block[ch]:.4f} vs {mean:.4f} (se {se_mean:.4f})")
        if abs(estimate.median_weeks_to_first_block[ch] - truth.median_weeks_to_first_block[ch]) > 1:
            out.append(f"{ch}: median weeks {estimate.median_weeks_to_first_block[ch]} vs {truth.median_weeks_to_first_block[ch]}")
    return out


@pytest.fixture(scope="module")
def exact() -> syn.FunnelTruth:
    return syn.exact_funnel_truth(syn.funnel_params(5))


@pytest.fixture(scope="module")
def monte_carlo() -> syn.FunnelTruth:
    return syn.monte_carlo_funnel_truth(MC_APPLICANTS, seed=0, depots=5)


@pytest.fixture(scope="module")
def default_log():
    return syn.generate_applicant_log(30_000, seed=7)


def test_exact_truth_is_a_plausible_funnel(exact):
    assert list(exact.kernel) == list(syn.CHANNELS)
    convs = np.array([exact.conversion[c] for c in syn.CHANNELS])
    assert ((convs > 0.15) & (convs < 0.65)).all()
    assert convs.max() - convs.min() > 0.3  # channels clearly differ
    for ch, kernel in exact.kernel.items():
        assert len(kernel) <= syn.KERNEL_WEEKS + 1 and (kernel >= 0).all()
        assert kernel.sum() == pytest.approx(exact.conversion[ch], abs=1e-12)
        assert 0.0 < exact.stage_conversion[ch][0] < 1.0
        assert np.prod(exact.stage_conversion[ch]) == pytest.approx(exact.conversion[ch], rel=1e-9)
    # the per-stage hazards are not geometric: low in week 0, a peak in weeks 1-3
    base = syn.BASE_HAZARD
    assert (base[:, 0] < base[:, 1:4].max(axis=1)).all() and (base[:, -1] < base[:, 1:4].max(axis=1)).all()


def test_exact_truth_matches_monte_carlo(exact, monte_carlo):
    assert sum(monte_carlo.n_applicants.values()) == MC_APPLICANTS
    assert mismatches(monte_carlo, exact, monte_carlo.n_applicants) == []
    for ch in syn.CHANNELS:
        n_reached = monte_carlo.n_applicants[ch]
        for j in range(3):
            p = exact.stage_conversion[ch][j]
            assert abs(monte_carlo.stage_conversion[ch][j] - p) <= Z * math.sqrt(p * (1 - p) / n_reached)
            n_reached = n_reached * p


def test_truth_check_rejects_a_wrong_truth(exact, monte_carlo):
    """The comparison has power: a kernel one week late or conversions 3 % low are caught."""
    n = monte_carlo.n_applicants
    late = syn.FunnelTruth({c: np.concatenate([[0.0], k]) for c, k in monte_carlo.kernel.items()},
                           monte_carlo.conversion, {c: m + 1 for c, m in monte_carlo.mean_weeks_to_first_block.items()},
                           {c: m + 1 for c, m in monte_carlo.median_weeks_to_first_block.items()}, monte_carlo.stage_conversion)
    assert len(mismatches(late, exact, n)) >= len(syn.CHANNELS)
    low = syn.FunnelTruth({c: 0.97 * k for c, k in monte_carlo.kernel.items()},
                          {c: 0.97 * v for c, v in monte_carlo.conversion.items()}, monte_carlo.mean_weeks_to_first_block,
                          monte_carlo.median_weeks_to_first_block, monte_carlo.stage_conversion)
    assert any("conversion" in m for m in mismatches(low, exact, n))


def _dates(log: pd.DataFrame) -> dict[str, pd.Series]:
    return {s: pd.to_datetime(log[s], format="ISO8601", errors="coerce") for s in syn.STAGES}


def test_applicant_log_is_consistent(default_log, exact):
    log, truth, observed_until = default_log
    assert truth is not None and truth.conversion == exact.conversion
    assert observed_until == dt.date(2026, 1, 5) + dt.timedelta(weeks=52)
    assert tuple(log.columns) == syn.APPLICANT_COLUMNS and len(log) == 30_000
    assert log["applicant_id"].is_unique and log["applicant_id"].str.fullmatch(r"A\d{7}").all()
    assert set(log["depot"]) == {"D001", "D002", "D003", "D004", "D005"}
    assert set(log["channel"]) == set(syn.CHANNELS)
    assert set(log["vehicle"]) == set(syn.VEHICLES) and set(log["device"]) == set(syn.DEVICES)
    assert log["age"].between(18, 65).all()
    for s in syn.STAGES:
        filled = log[s] != ""
        assert log.loc[filled, s].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    d = _dates(log)
    obs = pd.Timestamp(observed_until)
    assert d["applied"].notna().all() and (d["applied"] >= pd.Timestamp("2026-01-05")).all() and (d["applied"] < obs).all()
    for prev, nxt in zip(syn.STAGES, syn.STAGES[1:], strict=False):
        reached = d[nxt].notna()
        assert d[prev][reached].notna().all(), f"{nxt} without {prev}"
        gap = (d[nxt] - d[prev])[reached].dt.days
        assert (gap >= 0).all() and (gap % 7 == 0).all()  # the timing rule: whole weeks
        assert (gap // 7 < syn.MAX_WEEKS_IN_STAGE).all()
        assert (d[nxt][reached] <= obs).all()
    # the mix differs by depot
    mix = pd.crosstab(log["depot"], log["channel"], normalize="index")
    assert (mix.max() - mix.min()).max() > 0.05


@pytest.mark.parametrize("target", [0.15, 0.3, 0.5])
def test_censored_share_is_on_target(target):
    log, _, observed_until = syn.generate_applicant_log(20_000, seed=3, censored_share=target)
    share = syn.still_in_funnel(log, observed_until).mean()
    assert abs(share - target) <= CENSORED_SHARE_TOL
    assert log["applied"].max() < observed_until.isoformat()


def test_unattainable_censored_share_is_refused():
    """Over a two-week period nearly everyone is still in the funnel: 30 % is out of reach."""
    with pytest.raises(ValueError, match="not attainable"):
        syn.generate_applicant_log(10, seed=0, censored_share=0.3, weeks=2)


def test_generation_is_deterministic():
    """(Its speed, ~1 s for 50,000 applicants, is no test's business: machines are shared.)"""
    a, _, _ = syn.generate_applicant_log(50_000, seed=11)
    b, _, _ = syn.generate_applicant_log(50_000, seed=11)
    c, _, _ = syn.generate_applicant_log(50_000, seed=12)
    assert a.to_csv(index=False) == b.to_csv(index=False)
    assert a.to_csv(index=False) != c.to_csv(index=False)
    x, tx = syn.generate_activity_log(2_000, seed=11)
    y, ty = syn.generate_activity_log(2_000, seed=11)
    assert x.to_csv(index=False) == y.to_csv(index=False) and tx == ty
    assert x.to_csv(index=False) != syn.generate_activity_log(2_000, seed=12)[0].to_csv(index=False)


def test_uncensored_applicants_convert_as_the_truth_says():
    """Applicants who applied >= 3 * 26 weeks before observed_until have a known outcome
    (active by week 75 or dropped out by then), and their covariate mix is the population's."""
    log, truth, observed_until = syn.generate_applicant_log(60_000, seed=5, censored_share=0.1, weeks=156)
    d = _dates(log)
    early = (pd.Timestamp(observed_until) - d["applied"]).dt.days >= 7 * UNCENSORED_WEEKS
    assert early.sum() > 20_000
    assert not syn.still_in_funnel(log[early], observed_until).any()
    k = ((d["first_block"] - d["applied"]).dt.days // 7)[early]
    kernel, conv, n = {}, {}, {}
    for ch in syn.CHANNELS:
        mine = (log["channel"] == ch)[early]
        n[ch] = int(mine.sum())
        kernel[ch] = np.bincount(k[mine].dropna().astype(int), minlength=1) / n[ch]
        conv[ch] = float(kernel[ch].sum())
    empirical = syn.FunnelTruth(kernel, conv, {c: float((np.arange(len(v)) * v).sum() / v.sum()) for c, v in kernel.items()},
                                {c: int(np.searchsorted(np.cumsum(v), 0.5 * v.sum())) for c, v in kernel.items()}, {})
    assert mismatches(empirical, truth, n) == []


def test_to_long_round_trips(default_log):
    log, _, _ = default_log
    long = syn.to_long(log)
    assert tuple(long.columns) == syn.LONG_COLUMNS
    assert len(long) == int(sum((log[s] != "").sum() for s in syn.STAGES))
    back = long.pivot(index="applicant_id", columns="stage", values="date").reindex(columns=list(syn.STAGES)).fillna("")
    back = back.reindex(log["applicant_id"])
    for s in syn.STAGES:
        assert (back[s].to_numpy() == log[s].to_numpy()).all()
    covs = long.drop_duplicates("applicant_id").set_index("applicant_id").loc[log["applicant_id"]]
    for c in ("depot", "channel", "vehicle", "device", "age"):
        assert (covs[c].to_numpy() == log[c].to_numpy()).all()


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of sums and its standard error clustered by row (driver)."""
    r = num.sum() / den.sum()
    return float(r), float(np.sqrt(((num - r * den) ** 2).sum()) / den.sum())


def test_activity_log_matches_the_truth():
    """Retention from drivers with a row in week w at (observed) tenure >= 4, uncensored up to
    w + 2: P(row at w + g) = retention**g * (1 - zero_week_prob), so retention is the ratio of
    rows at w + 2 to rows at w + 1 (zero weeks and churn look alike in the log). Blocks per
    active driver-week from weeks strictly between a driver's first and last row (active
    weeks, worked or not)."""
    log, truth = syn.generate_activity_log(20_000, seed=3)
    assert tuple(log.columns) == syn.ACTIVITY_COLUMNS
    week = pd.to_datetime(log["week"], format="ISO8601")
    assert (week.dt.day_of_week == 0).all() and (log["blocks"] >= 1).all()
    assert week.min() >= pd.Timestamp(truth.first_week) and week.max() <= pd.Timestamp(truth.last_week)
    assert not log.duplicated(["driver_id", "week"]).any()
    assert (log.groupby("driver_id")["depot"].nunique() == 1).all()
    assert all(2.5 <= v <= 4.5 for v in truth.blocks_lambda.values())

    n_weeks = (truth.last_week - truth.first_week).days // 7 + 1
    code, drivers = pd.factorize(log["driver_id"])
    wk = ((week - pd.Timestamp(truth.first_week)).dt.days // 7).to_numpy()
    rows = np.zeros((len(drivers), n_weeks), dtype=bool)
    blocks = np.zeros((len(drivers), n_weeks))
    rows[code, wk] = True
    blocks[code, wk] = log["blocks"].to_numpy()
    depot = log.groupby(code)["depot"].first().sort_index().to_numpy()
    first = rows.argmax(axis=1)
    last = n_weeks - 1 - rows[:, ::-1].argmax(axis=1)
    w = np.arange(n_weeks)
    for d in truth.retention:
        m = depot == d
        r_, f_ = rows[m], first[m]
        base = r_[:, : n_weeks - 2] & (w[None, : n_weeks - 2] - f_[:, None] >= syn.EARLY_WEEKS)
        retention, se = _ratio((base & r_[:, 2:]).sum(axis=1), (base & r_[:, 1:-1]).sum(axis=1))
        assert abs(retention - truth.retention[d]) <= Z * se, (d, retention, truth.retention[d], se)
        assert se < 0.005
        inside = (w[None, :] > f_[:, None]) & (w[None, :] < last[m][:, None])
        per_week, se_b = _ratio((blocks[m] * inside).sum(axis=1), inside.sum(axis=1))
        assert abs(per_week - truth.blocks_per_driver[d]) <= Z * se_b, (d, per_week, truth.blocks_per_driver[d], se_b)
        assert se_b < 0.03
