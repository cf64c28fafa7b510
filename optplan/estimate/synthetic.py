"""Synthetic applicant and driver-activity logs drawn from KNOWN parameters, with the truth.

For tests and demos of the estimators in ``optplan.estimate``: every log comes with the
quantities an estimator should recover, computed exactly from the generating parameters.
Nothing but the sampling depends on ``seed``: the parameters and the truth depend only on
the number of depots (and for the censoring window on ``censored_share``, ``start``,
``weeks`` and ``observed_until``). Every draw comes from one ``numpy.random.Generator(seed)``
in a fixed order, so the same arguments give the same log, byte for byte, with ``to_csv``.

Applicant log (wide, ``generate_applicant_log``)
================================================
One row per applicant, columns in this order: ``applicant_id`` ("A0000001", ..., numbered in
order of application date), ``depot`` ("D001", ...), ``channel`` (referral, job_board, agency,
social_ads), ``applied``, ``background_check``, ``onboarding``, ``first_block`` (ISO dates
YYYY-MM-DD; the empty string "" where the stage was not reached by ``observed_until``, an
empty cell in CSV, NaN once read back by pandas), then
the covariates ``vehicle`` (car, bike, scooter), ``device`` (ios, android, web) and ``age``
(int, years, 18 to 65), and with a ``BonusDesign`` a last column ``bonus`` (the sign-on bonus
offered, currency per converted driver; 0: none). Reaching ``first_block`` means becoming an
active driver.
``to_long`` gives the long form (one row per reached stage).

The true process (weekly discrete time). An applicant enters stage 0 (applied) on the
application date. For each transition j in {0: applied->background_check,
1: background_check->onboarding, 2: onboarding->first_block}, an applicant who entered
stage j and has spent tau = 0, 1, 2, ... whole weeks in it advances during week tau with
probability (the hazard)

    h_j(tau, x) = sigmoid(BASE_LOGIT[j, min(tau, 8)] + CHANNEL_EFFECT[j, channel]
                          + VEHICLE_EFFECT[j, vehicle] + DEVICE_EFFECT[j, device]
                          + AGE_COEF[j] * (age - 35) / 10)

(the tables below; BASE_HAZARD = sigmoid(BASE_LOGIT) is the hazard of the reference profile
job_board / car / android / age 35: low in week 0, a peak in weeks 1-3, then a decline, so
the time in a stage is far from geometric). The hazards depend on the covariates only, not
on the past, so given x the weeks spent in the three stages are independent. Optionally
(``speed_shift`` s > 0) each applicant also has a latent speed type, fast or slow (fast
with probability ``fast_share`` of the applicant's channel, 1/2 by default), adding +s or
-s to every stage's logit: then, given x alone, the stage
durations are dependent (whoever was fast through one stage is likely fast through the next,
and converters are faster than independent stages would make them). An applicant
who has not advanced in weeks 0..25 (``MAX_WEEKS_IN_STAGE`` = 26 weeks) has dropped out and
never advances.

Timing rule (so that whole weeks add up exactly): an advance during stage-week tau is dated
exactly 7 * tau days after the date the applicant entered the stage, so every stage date
falls on the weekday of the application date (application dates are uniform over the days
of the window, hence over weekdays). Then the whole weeks in stage j, floor(days / 7)
between consecutive stage dates, are exactly tau_j, and the weeks from applying to the
first block, k = (first_block - applied).days // 7, are exactly tau_0 + tau_1 + tau_2 (the
constant is 0). An advance in week 0 shares its date with the stage entry (a same-day
background check, say): stage dates are non-decreasing, not strictly increasing.

Population (the mix the truth is averaged over): depot d is drawn with probability
``DEPOT_WEIGHT[d]``; given the depot, channel, vehicle, device and age are independent
with depot-specific distributions (``funnel_params``): depots lean towards different
channels, some are bike-heavy, web-heavy or younger. The parameters are fixed functions
of the depot index (no randomness), listed by ``funnel_params(depots)``.

Censoring. ``observed_until`` (default ``start + weeks`` weeks): nobody applies after it
(every application date is before it), and a stage reached after it is left empty
(censored, not dropped). An applicant is "still in the funnel" at ``observed_until`` when
not active by then and the stage last reached (on date e) may still be left: e + 7*25 days
> observed_until (``still_in_funnel``). ``censored_share`` targets the expected share of
applicants still in the funnel. It is achieved by choosing the application-date window
inside [start, observed_until): application dates are uniform over the days of the window,
and the expected share for a window follows exactly from the true process (the probability
of being still in the funnel m whole weeks after applying, averaged over the population).
If the whole period gives at most the target, applications stop early (window
[start, end), end chosen to match: fewer recent applicants, fewer censored); otherwise
they begin late (window [begin, observed_until): only recent applicants, more censored).
A target outside the attainable range raises ValueError. The realised share differs from
the target by sampling noise only (about sqrt(0.25 / n)).

Truth (``FunnelTruth``), per channel, averaged over the channel's population covariate mix
(not the realised sample): ``kernel[channel][k]`` = probability of being first active k
whole weeks after applying (k = 0 .. 75, trimmed after the last k whose tail mass is at
least 1e-9), ``conversion`` = kernel.sum(), ``mean_weeks_to_first_block`` and
``median_weeks_to_first_block`` among converts (weeks; the median is the smallest k whose
cumulative kernel reaches half the conversion), ``stage_conversion`` = probability of
advancing out of stage j given stage j was reached (j = 0, 1, 2). ``exact_funnel_truth``
convolves the per-stage first-advance distributions of each covariate profile and averages
over the mix; ``monte_carlo_funnel_truth`` simulates applicants instead (a check).

With the default 5 depots the true values are (conversion; mean and median weeks from
applying to the first block among converts): referral 0.608; 6.48, 5 - job_board 0.355;
7.83, 6 - agency 0.626; 6.02, 5 - social_ads 0.176; 8.75, 6. With the defaults (52 weeks,
censored_share 0.3) applications fall on days 0..317 after start: none in the last 47 days
before observed_until.

Activity log (``generate_activity_log``)
========================================
Columns ``driver_id`` ("R0000001", ...), ``depot``, ``week`` (ISO date of the week's Monday;
``start`` is moved back to its Monday), ``blocks`` (int >= 1): one row per driver-week with at
least one block worked; weeks with 0 blocks have no row. Rows are sorted by driver, week.

The true process: ``n_drivers`` drivers are split over depots with probabilities
``driver_weight``; half are active in the first week with a tenure drawn uniformly from
0..103 weeks, half join in a week drawn uniformly over the log's weeks with tenure 0. A
driver active in a week of tenure tau (weeks since joining) churns at the end of it with
probability ``early_hazard[d]`` if tau < 4 (``EARLY_WEEKS``) and ``hazard[d]`` (2-6 %) from
tau = 4 on; churned drivers never return. An active driver skips a week with probability
``skip_prob[d]`` (5-15 %) and otherwise works Poisson(``blocks_lambda[d]``) blocks
(2.5-4.5), so a week without a row is a skipped week, a Poisson zero or churn: the log
cannot tell them apart. The log ends after ``weeks`` weeks; drivers still active then are
censored.

Truth (``ActivityTruth``), per depot: ``retention`` = 1 - ``hazard`` (weekly probability of
staying, for tenure >= 4 weeks; the definition used: tenure-independent from week 4 on),
``early_retention`` = 1 - ``early_hazard`` (tenure weeks 0-3), ``blocks_per_driver`` = expected
blocks per active driver-week including skipped weeks = lambda * (1 - skip_prob), and
``zero_week_prob`` = P(no row | active) = skip + (1 - skip) * exp(-lambda). Identities an
estimator can use: for a driver with a row in week w at tenure >= 4, P(row in week w + g) =
retention**g * (1 - zero_week_prob) for g >= 1; weeks strictly between a driver's first and
last row are active weeks, each with no row with probability ``zero_week_prob``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from optplan.errors import OptionError

STAGES = ("applied", "background_check", "onboarding", "first_block")
#: Weeks an applicant may spend in a stage (advancing in weeks 0..25) before dropping out.
MAX_WEEKS_IN_STAGE = 26
#: Hazards are week-specific for weeks 0..7 of a stage, constant from week 8 on.
N_BUCKETS = 9
CHANNELS = ("referral", "job_board", "agency", "social_ads")
VEHICLES = ("car", "bike", "scooter")
DEVICES = ("ios", "android", "web")
AGES = np.arange(18, 66)
APPLICANT_COLUMNS = ("applicant_id", "depot", "channel", *STAGES, "vehicle", "device", "age")
LONG_COLUMNS = ("applicant_id", "stage", "date", "depot", "channel", "vehicle", "device", "age")
ACTIVITY_COLUMNS = ("driver_id", "depot", "week", "blocks")
#: Kernel length before trimming: weeks 0 .. 3 * 26 (support ends at 3 * 25 = 75).
KERNEL_WEEKS = 3 * MAX_WEEKS_IN_STAGE
KERNEL_TAIL = 1e-9
#: Activity: tenure weeks 0..3 churn at the early hazard.
EARLY_WEEKS = 4

#: Hazard of the reference profile (job_board, car, android, age 35) in stage-weeks 0..8+.
BASE_HAZARD = np.array([
    [0.12, 0.35, 0.30, 0.20, 0.12, 0.08, 0.05, 0.03, 0.008],  # applied -> background_check
    [0.05, 0.25, 0.32, 0.22, 0.14, 0.09, 0.06, 0.04, 0.010],  # background_check -> onboarding
    [0.10, 0.25, 0.20, 0.12, 0.08, 0.05, 0.03, 0.02, 0.005],  # onboarding -> first_block
])
BASE_LOGIT = np.log(BASE_HAZARD / (1.0 - BASE_HAZARD))
#: Logit shifts, rows = transitions 0..2, columns = CHANNELS / VEHICLES / DEVICES.
CHANNEL_EFFECT = np.array([
    [0.6, 0.0, 1.0, -0.50],
    [0.5, 0.0, 0.7, -0.45],
    [0.5, 0.0, 0.3, -0.40],
])
VEHICLE_EFFECT = np.array([
    [0.0, 0.1, 0.0],
    [0.0, 0.0, -0.25],
    [0.0, -0.6, -0.2],   # bikes and scooters are slower to their first block
])
DEVICE_EFFECT = np.array([
    [0.15, 0.0, -0.5],   # web applicants are slower through the background check
    [0.0, 0.0, -0.15],
    [0.1, 0.0, 0.0],
])
#: Logit change per 10 years of age above 35.
AGE_COEF = np.array([0.05, 0.10, -0.15])
#: Sign-on bonus (``BonusDesign``): logit change per 100 currency units of bonus offered, by
#: transition (the background check barely moves; turning up to onboarding and to a first
#: block do: the bonus is paid on the first block).
BONUS_COEF_PER_100 = (0.03, 0.10, 0.20)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _depot_ids(depots: int) -> tuple[str, ...]:
    if depots < 1:
        raise ValueError(f"depots must be at least 1, got {depots}")
    return tuple(f"D{i + 1:03d}" for i in range(depots))


def _spread(depots: int) -> np.ndarray:
    """Depot positions in [0, 1] (0.5 for a single depot)."""
    return np.linspace(0.0, 1.0, depots) if depots > 1 else np.array([0.5])


def _normalise(a: np.ndarray) -> np.ndarray:
    return a / a.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class FunnelParams:
    """The generating parameters. Hazard tables as in the module docstring; the population
    mix: ``depot_weight`` (D,), and per depot ``channel_mix`` (D, 4), ``vehicle_mix`` (D, 3),
    ``device_mix`` (D, 3), ``age_pmf`` (D, 48) over ages 18..65 (rows sum to 1)."""

    depots: tuple[str, ...]
    base_logit: np.ndarray
    channel_effect: np.ndarray
    vehicle_effect: np.ndarray
    device_effect: np.ndarray
    age_coef: np.ndarray
    depot_weight: np.ndarray
    channel_mix: np.ndarray
    vehicle_mix: np.ndarray
    device_mix: np.ndarray
    age_pmf: np.ndarray
    #: Latent speed (logit units): fast applicants +speed_shift on every stage's logit,
    #: slow ones -speed_shift; 0 = no latent type.
    speed_shift: float = 0.0
    #: Share of fast applicants in each channel (CHANNELS order; probability).
    fast_share: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5)

    def types(self) -> tuple[tuple[np.ndarray, float], ...]:
        """((share of the type in each channel (C,), logit shift), ...) of the latent speed types."""
        s = float(self.speed_shift)
        f = np.asarray(self.fast_share, dtype=float)
        return ((np.ones(len(CHANNELS)), 0.0),) if s == 0.0 else ((f, s), (1.0 - f, -s))

    def linear_predictor(self, j: int, channel, vehicle, device, age) -> np.ndarray:
        """Covariate part of the stage-j logit (channel, vehicle, device as indices)."""
        return (self.channel_effect[j][channel] + self.vehicle_effect[j][vehicle] + self.device_effect[j][device]
                + self.age_coef[j] * (np.asarray(age, dtype=float) - 35.0) / 10.0)

    def hazard(self, j: int, tau, channel, vehicle, device, age, shift=0.0) -> np.ndarray:
        """h_j(tau, x): probability of advancing out of stage j during stage-week tau (for the
        latent type whose logit is shifted by ``shift``)."""
        bucket = np.minimum(np.asarray(tau), N_BUCKETS - 1)
        return _sigmoid(self.base_logit[j][bucket] + self.linear_predictor(j, channel, vehicle, device, age) + shift)


def funnel_params(depots: int = 5, speed_shift: float = 0.0, fast_share=None) -> FunnelParams:
    """The true funnel parameters for ``depots`` depots (fixed functions of the depot index),
    the latent speed shift (logit units, >= 0) and the share of fast applicants per channel
    (CHANNELS order; None: 1/2 in every channel)."""
    if not (np.isfinite(speed_shift) and speed_shift >= 0):
        raise ValueError(f"speed_shift must be a finite number >= 0, got {speed_shift}")
    fast = (0.5,) * len(CHANNELS) if fast_share is None else tuple(float(f) for f in fast_share)
    if len(fast) != len(CHANNELS) or not all(0.0 <= f <= 1.0 for f in fast):
        raise ValueError(f"fast_share must be {len(CHANNELS)} probabilities ({', '.join(CHANNELS)}), got {fast_share}")
    ids = _depot_ids(depots)
    t = _spread(depots)[:, None]  # (D, 1)
    idx = np.arange(depots)[:, None]
    depot_weight = _normalise(1.0 + 0.5 * np.sin(1.7 * np.arange(depots) + 0.3))
    # channels: referral, job_board, agency, social_ads; depots lean differently
    channel_mix = _normalise(np.array([0.15, 0.40, 0.15, 0.30]) * np.exp(np.array([0.8, -0.4, -0.8, 0.6]) * (t - 0.5)
                                                                         + np.array([0.0, 0.0, 0.5, 0.0]) * np.cos(2.0 * idx)))
    vehicle_mix = _normalise(np.array([0.60, 0.25, 0.15]) * np.exp(np.array([-0.8, 1.0, 0.3]) * (t - 0.5)))
    device_mix = _normalise(np.array([0.40, 0.45, 0.15]) * np.exp(np.array([0.3, -0.2, 0.7]) * np.sin(3.0 * idx + 1.0)))
    age_mean = 28.0 + 10.0 * ((0.618034 * np.arange(depots) + 0.3) % 1.0)
    age_pmf = _normalise(np.exp(-0.5 * ((AGES[None, :] - age_mean[:, None]) / 10.0) ** 2))
    return FunnelParams(ids, BASE_LOGIT.copy(), CHANNEL_EFFECT.copy(), VEHICLE_EFFECT.copy(), DEVICE_EFFECT.copy(),
                        AGE_COEF.copy(), depot_weight, channel_mix, vehicle_mix, device_mix, age_pmf, float(speed_shift), fast)


@dataclass(frozen=True)
class FunnelTruth:
    """True funnel quantities per channel (see the module docstring). ``n_applicants`` is
    the simulated sample size per channel for a Monte Carlo truth, None for the exact one."""

    kernel: dict[str, np.ndarray]
    conversion: dict[str, float]
    mean_weeks_to_first_block: dict[str, float]
    median_weeks_to_first_block: dict[str, int]
    stage_conversion: dict[str, tuple[float, float, float]]
    n_applicants: dict[str, int] | None = None

    def table(self) -> pd.DataFrame:
        """One row per channel: conversion, mean and median weeks to first block."""
        return pd.DataFrame({
            "channel": list(self.kernel),
            "conversion": [self.conversion[c] for c in self.kernel],
            "mean_weeks_to_first_block": [self.mean_weeks_to_first_block[c] for c in self.kernel],
            "median_weeks_to_first_block": [self.median_weeks_to_first_block[c] for c in self.kernel],
        })


def _conv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full convolution along the last axis (leading axes broadcast)."""
    out = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]) + (a.shape[-1] + b.shape[-1] - 1,))
    for t in range(b.shape[-1]):
        out[..., t:t + a.shape[-1]] += a * b[..., t:t + 1]
    return out


def _trim(kernel: np.ndarray) -> np.ndarray:
    """Cut the kernel after the last week whose tail mass (that week on) is >= KERNEL_TAIL."""
    tail = np.cumsum(kernel[::-1])[::-1]
    keep = np.nonzero(tail >= KERNEL_TAIL)[0]
    return kernel[: (keep[-1] + 1 if len(keep) else 1)].copy()


def _summaries(kernel: np.ndarray) -> tuple[float, float, int]:
    conv = float(kernel.sum())
    if conv <= 0:
        return 0.0, float("nan"), -1
    mean = float((np.arange(len(kernel)) * kernel).sum() / conv)
    median = int(np.searchsorted(np.cumsum(kernel), 0.5 * conv * (1.0 - 1e-12)))
    return conv, mean, median


def _profile_stage_pmfs(params: FunnelParams, shift: float = 0.0, stage_shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(3, C, V, E, A, 26): probability of advancing out of stage j first in stage-week tau,
    per covariate profile (channel, vehicle, device, age), for the latent type whose logits
    are shifted by ``shift``; ``stage_shift[j]`` is added to stage j's logit (a bonus's effect)."""
    c, v, e, a = np.ix_(np.arange(len(CHANNELS)), np.arange(len(VEHICLES)), np.arange(len(DEVICES)), AGES)
    tau = np.arange(MAX_WEEKS_IN_STAGE)
    out = []
    for j in range(3):
        h = params.hazard(j, tau, c[..., None], v[..., None], e[..., None], a[..., None], shift + stage_shift[j])
        stay = np.cumprod(1.0 - h, axis=-1)
        before = np.concatenate([np.ones(stay.shape[:-1] + (1,)), stay[..., :-1]], axis=-1)
        out.append(h * before)
    return np.stack(out)


def _profile_weights(params: FunnelParams) -> np.ndarray:
    """(C, V, E, A): population probability of each (channel, vehicle, device, age) profile."""
    return np.einsum("d,dc,dv,de,da->cvea", params.depot_weight, params.channel_mix, params.vehicle_mix,
                     params.device_mix, params.age_pmf)


def exact_funnel_truth(params: FunnelParams, stage_shift=(0.0, 0.0, 0.0)) -> FunnelTruth:
    """Truth by convolution: per profile and latent speed type, the weeks to first block are
    tau_0 + tau_1 + tau_2 (independent given both), averaged over the types and each
    channel's population covariate mix. With a speed shift the stage durations are dependent
    given the profile alone: a fast applicant is fast at every stage. ``stage_shift``: logit
    change of each stage for everyone (the truth had every applicant been offered a bonus)."""
    w = _profile_weights(params)
    k3 = 0.0
    reach = np.zeros((4,) + w.shape)  # probability of reaching stage 0..3, per profile
    for share, shift in params.types():
        f = _profile_stage_pmfs(params, shift, stage_shift)
        k3 = k3 + share[:, None, None, None, None] * _conv(_conv(f[0], f[1]), f[2])  # (C, V, E, A, 76)
        q = f.sum(axis=-1)  # (3, C, V, E, A) probability of advancing at all
        reach += share[None, :, None, None, None] * np.stack([np.ones(w.shape), q[0], q[0] * q[1], q[0] * q[1] * q[2]])
    kernel, conv, mean, median, stages = {}, {}, {}, {}, {}
    for ci, ch in enumerate(CHANNELS):
        wc = w[ci] / w[ci].sum()
        full = np.zeros(KERNEL_WEEKS + 1)
        full[: k3.shape[-1]] = np.einsum("vea,veak->k", wc, k3[ci])
        kernel[ch] = _trim(full)
        conv[ch], mean[ch], median[ch] = _summaries(kernel[ch])
        r = [float((wc * reach[j, ci]).sum()) for j in range(4)]
        stages[ch] = tuple(r[j + 1] / r[j] for j in range(3))
    return FunnelTruth(kernel, conv, mean, median, stages)


@lru_cache(maxsize=16)
def _cached(depots: int, speed_shift: float = 0.0, fast_share=None) -> tuple[FunnelParams, FunnelTruth, np.ndarray]:
    params = funnel_params(depots, speed_shift, fast_share)
    return params, exact_funnel_truth(params), _still_in_funnel_by_week(params)


def _still_in_funnel_by_week(params: FunnelParams) -> np.ndarray:
    """P(still in the funnel m whole weeks after applying), m = 0 .. 101, population average.

    With S_j the week (since applying) stage j is entered and T_j the weeks spent in it:
    active by then iff S_3 <= m; a known drop-out iff for some stage j, S_j <= m - 25 and
    T_j never happens (the last possible advance date has passed)."""
    w = _profile_weights(params)
    last = MAX_WEEKS_IN_STAGE - 1
    m = np.arange(3 * last + MAX_WEEKS_IN_STAGE + 1)

    def cdf(p, x):  # P(S <= x) for integer x (array), S with sub-pmf p on 0..len-1
        c = np.concatenate([np.zeros(p.shape[:-1] + (1,)), np.cumsum(p, axis=-1)], axis=-1)
        return c[..., np.clip(x + 1, 0, p.shape[-1])]

    out = 0.0
    for share, shift in params.types():
        f = _profile_stage_pmfs(params, shift)
        s = [np.zeros(f.shape[1:-1] + (1,)) + 1.0, f[0], _conv(f[0], f[1]), _conv(_conv(f[0], f[1]), f[2])]
        resolved = cdf(s[3], m)
        for j in range(3):
            resolved = resolved + (1.0 - f[j].sum(axis=-1))[..., None] * cdf(s[j], m - last)
        out = out + np.einsum("c,cvea,cveam->m", share, w, 1.0 - resolved)
    return out


def _application_window(cbar: np.ndarray, days: int, target: float) -> tuple[int, int]:
    """Window [lo, hi) of application day offsets from ``start`` (observed_until = day ``days``)
    whose expected share still in the funnel at observed_until is closest to ``target``."""
    d = np.arange(1, days + 1)  # days from application to observed_until
    c_day = cbar[np.minimum(d // 7, len(cbar) - 1)]
    c_day[d // 7 >= len(cbar)] = 0.0
    cum = np.concatenate([[0.0], np.cumsum(c_day)])  # cum[x] = sum over d = 1..x
    widths = np.arange(min(7, days), days + 1)
    full = cum[days] / days
    if target <= full:  # applications stop early: days d in [days - e + 1, days]
        share = (cum[days] - cum[days - widths]) / widths
        e = int(widths[np.argmin(np.abs(share - target))])
        best, window = share[widths == e][0], (0, e)
    else:  # applications begin late: days d in [1, b]
        share = cum[widths] / widths
        b = int(widths[np.argmin(np.abs(share - target))])
        best, window = share[widths == b][0], (days - b, days)
    if abs(best - target) > 0.005:
        lo = (cum[days] - cum[days - widths[0]]) / widths[0]
        hi = cum[widths[0]] / widths[0]
        raise OptionError("--censored-share", f"a share attainable with this period ({lo:.3f} to {hi:.3f}); "
                          f"censored_share={target} is not attainable", target)
    return window


def _draw_population(params: FunnelParams, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Depot and covariates (as indices; age in years) of ``n`` applicants."""

    def pick(table: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        u = rng.random(n)
        cdf = np.cumsum(table, axis=-1)
        cdf[..., -1] = 1.0
        if rows is None:
            return np.minimum(np.searchsorted(cdf, u, side="right"), table.shape[-1] - 1)
        k = table.shape[-1]
        flat = (cdf + np.arange(len(table))[:, None]).ravel()
        return np.minimum(np.searchsorted(flat, u + rows, side="right") - rows * k, k - 1)

    depot = pick(params.depot_weight, None)
    return {
        "depot": depot,
        "channel": pick(params.channel_mix, depot),
        "vehicle": pick(params.vehicle_mix, depot),
        "device": pick(params.device_mix, depot),
        "age": AGES[pick(params.age_pmf, depot)],
    }


def _simulate_stage_weeks(params: FunnelParams, pop: dict[str, np.ndarray], rng: np.random.Generator,
                          extra_logit: np.ndarray | None = None) -> np.ndarray:
    """(3, n) whole weeks spent in each stage before advancing, -1 = never advances (drop-out),
    drawn week by week from the hazards (one uniform per applicant, stage and week). With a
    speed shift, each applicant's latent type is drawn first (one uniform each: fast below
    the first type's share); without, no draw, so logs without a shift are unchanged."""
    n = len(pop["depot"])
    out = np.full((3, n), -1, dtype=np.int16)
    types = params.types()
    shift = 0.0 if len(types) == 1 else np.where(rng.random(n) < types[0][0][pop["channel"]], types[0][1], types[1][1])
    for j in range(3):
        eta = params.linear_predictor(j, pop["channel"], pop["vehicle"], pop["device"], pop["age"]) + shift
        if extra_logit is not None:  # (3, n): each applicant's bonus effect
            eta = eta + extra_logit[j]
        t = out[j]
        for tau in range(MAX_WEEKS_IN_STAGE):
            u = rng.random(n)
            hit = (t < 0) & (u < _sigmoid(params.base_logit[j, min(tau, N_BUCKETS - 1)] + eta))
            t[hit] = tau
    return out


def monte_carlo_funnel_truth(n_applicants: int = 1_000_000, seed: int = 0, depots: int = 5,
                             speed_shift: float = 0.0, fast_share=None) -> FunnelTruth:
    """Truth by simulation of ``n_applicants`` uncensored applicants from the population
    (the second route to ``exact_funnel_truth``; per-channel sample sizes in ``n_applicants``)."""
    params = funnel_params(depots, speed_shift, fast_share)
    rng = np.random.default_rng(seed)
    pop = _draw_population(params, n_applicants, rng)
    t = _simulate_stage_weeks(params, pop, rng)
    active = (t >= 0).all(axis=0)
    k = t.sum(axis=0, dtype=np.int64)
    kernel, conv, mean, median, stages, counts = {}, {}, {}, {}, {}, {}
    for ci, ch in enumerate(CHANNELS):
        mine = pop["channel"] == ci
        n_c = int(mine.sum())
        counts[ch] = n_c
        full = np.bincount(k[mine & active], minlength=KERNEL_WEEKS + 1).astype(float) / max(n_c, 1)
        kernel[ch] = _trim(full)
        conv[ch], mean[ch], median[ch] = _summaries(kernel[ch])
        reached = [n_c] + [int((mine & (t[: j + 1] >= 0).all(axis=0)).sum()) for j in range(3)]
        stages[ch] = tuple(reached[j + 1] / max(reached[j], 1) for j in range(3))
    return FunnelTruth(kernel, conv, mean, median, stages, counts)


def generate_applicant_log(
    n_applicants: int,
    seed: int,
    depots: int = 5,
    censored_share: float = 0.3,
    start: dt.date = dt.date(2026, 1, 5),
    weeks: int = 52,
    observed_until: dt.date | None = None,
    speed_shift: float = 0.0,
    fast_share=None,
    bonus: BonusDesign | None = None,
) -> tuple[pd.DataFrame, FunnelTruth, dt.date]:
    """A wide applicant log from the true process, its truth and ``observed_until``.

    ``n_applicants``: rows; ``seed``: sampling seed; ``depots``: number of depots (D001..);
    ``censored_share``: target expected share of applicants still in the funnel at
    ``observed_until`` (probability, 0..1); ``start``: first possible application date;
    ``weeks``: length of the period in weeks, ``observed_until`` defaults to
    ``start + 7 * weeks`` days (applications are in [start, observed_until)); ``speed_shift``:
    latent speed (logit units; fast applicants +shift at every stage, slow ones -shift), so
    that stage durations are dependent: converters are fast at every stage; ``fast_share``:
    the share of fast applicants in each channel (CHANNELS order; None: 1/2 everywhere);
    ``bonus``: sign-on bonuses offered at random (``BonusDesign``): the log gets a last column
    ``bonus`` and the truth of its effect is ``bonus.truth(depots, ...)`` (the returned
    FunnelTruth is the process without a bonus; the censoring window is chosen for it, so the
    realised share still in the funnel is a little off the target). Without a bonus the log
    is the same as before bonuses existed, byte for byte."""
    if n_applicants < 0:
        raise ValueError(f"n_applicants must be >= 0, got {n_applicants}")
    if not 0.0 < censored_share < 1.0:
        raise ValueError(f"censored_share must be in (0, 1), got {censored_share}")
    if observed_until is None:
        observed_until = start + dt.timedelta(weeks=weeks)
    days = (observed_until - start).days
    if days < 7:
        raise ValueError(f"observed_until ({observed_until}) must be at least a week after start ({start})")
    params, truth, cbar = _cached(depots, float(speed_shift), None if fast_share is None else tuple(map(float, fast_share)))
    lo, hi = _application_window(cbar, days, censored_share)

    rng = np.random.default_rng(seed)
    pop = _draw_population(params, n_applicants, rng)
    extra = None
    if bonus is not None:  # drawn only with a bonus design: logs without one are unchanged
        pop["bonus"] = bonus.draw(pop["channel"], rng)
        extra = bonus.logit_shift(pop["bonus"])
    t = _simulate_stage_weeks(params, pop, rng, extra)
    applied = rng.integers(lo, hi, n_applicants)

    order = np.argsort(applied, kind="stable")
    applied, t = applied[order], t[:, order]
    pop = {key: val[order] for key, val in pop.items()}
    origin = np.datetime64(start, "D")
    reached = np.ones(n_applicants, dtype=bool)
    day = applied.astype(np.int64)
    cols = {s: None for s in STAGES}
    cols["applied"] = np.datetime_as_string(origin + day, unit="D")
    for j in range(3):
        reached &= t[j] >= 0
        day = day + 7 * t[j].astype(np.int64)
        seen = reached & (day <= days)
        cols[STAGES[j + 1]] = np.where(seen, np.datetime_as_string(origin + np.where(seen, day, 0), unit="D"), "")
    log = pd.DataFrame({
        "applicant_id": np.char.add("A", np.char.zfill(np.arange(1, n_applicants + 1).astype(str), 7)),
        "depot": np.asarray(params.depots)[pop["depot"]],
        "channel": np.asarray(CHANNELS)[pop["channel"]],
        **cols,
        "vehicle": np.asarray(VEHICLES)[pop["vehicle"]],
        "device": np.asarray(DEVICES)[pop["device"]],
        "age": pop["age"].astype(np.int64),
        **({"bonus": pop["bonus"]} if bonus is not None else {}),
    })
    return log, truth, observed_until


@dataclass(frozen=True)
class BonusDesign:
    """Sign-on bonuses in an applicant log: each applicant of ``channels`` is offered one of
    ``levels`` (currency units per converted driver; 0 = no bonus) with equal probability,
    others none; a bonus b raises stage j's logit by ``coef_per_100[j] * b / 100`` (the same
    for every channel and covariate profile: the estimator's model is right here)."""

    levels: tuple[float, ...] = (0.0, 100.0, 250.0)
    channels: tuple[str, ...] = ("job_board", "social_ads")
    coef_per_100: tuple[float, float, float] = BONUS_COEF_PER_100

    def __post_init__(self):
        if not self.levels or any(not np.isfinite(b) or b < 0 for b in self.levels):
            raise ValueError(f"bonus levels must be finite numbers >= 0, got {self.levels}")
        unknown = sorted(set(self.channels) - set(CHANNELS))
        if unknown:
            raise ValueError(f"bonus channels must be among {CHANNELS}, got {unknown}")

    def draw(self, channel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each applicant's bonus (float, currency units) given their channel index: one integer
        draw per applicant."""
        pick = np.asarray(self.levels, dtype=float)[rng.integers(0, len(self.levels), len(channel))]
        offered = np.isin(channel, [CHANNELS.index(c) for c in self.channels])
        return np.where(offered, pick, 0.0)

    def logit_shift(self, bonus) -> np.ndarray:
        """(3, ...) logit change of each stage for bonus ``bonus`` (currency units)."""
        return np.asarray(self.coef_per_100, dtype=float).reshape((3,) + (1,) * np.ndim(bonus)) * (
            np.asarray(bonus, dtype=float) / 100.0)

    def truth(self, depots: int = 5, speed_shift: float = 0.0, fast_share=None) -> pd.DataFrame:
        """Per channel offered a bonus and positive level: ``conversion`` had every applicant of
        the channel been offered that bonus, ``conversion_without`` with none, and
        ``conversion_uplift`` = conversion / conversion_without - 1 (share), exactly from the
        generating process (over the channel's population covariate mix)."""
        params = funnel_params(depots, speed_shift, fast_share)
        base = exact_funnel_truth(params).conversion
        rows = []
        for b in sorted({float(v) for v in self.levels if v > 0}):
            conv = exact_funnel_truth(params, tuple(self.logit_shift(b))).conversion
            rows += [{"channel": c, "bonus": b, "conversion": conv[c], "conversion_without": base[c],
                      "conversion_uplift": conv[c] / base[c] - 1.0} for c in self.channels]
        return pd.DataFrame(rows).sort_values(["channel", "bonus"], ignore_index=True)


def with_windows(wide: pd.DataFrame, rng: np.random.Generator, days: tuple[int, int] = (21, 120)) -> pd.DataFrame:
    """The log as a per-applicant window would record it: each applicant followed for a whole
    number of days drawn uniformly from [days[0], days[1]) after applying; stage dates after
    the window blanked, the window's end in the column ``observed_until`` (ISO dates)."""
    out = wide.copy()
    window = pd.to_datetime(out["applied"]) + pd.to_timedelta(rng.integers(days[0], days[1], len(out)), unit="D")
    for s in STAGES[1:]:
        d = pd.to_datetime(out[s])
        out[s] = d.where(d <= window).dt.strftime("%Y-%m-%d").fillna("")
    out["observed_until"] = window.dt.strftime("%Y-%m-%d")
    return out


def still_in_funnel(wide: pd.DataFrame, observed_until: dt.date) -> np.ndarray:
    """Boolean mask: applicants not active by ``observed_until`` whose last reached stage
    (entered on date e) may still be left, e + 7 * 25 days > observed_until (censored)."""
    last = pd.Series(pd.NaT, index=wide.index, dtype="datetime64[ns]")
    for s in STAGES:
        d = pd.to_datetime(wide[s].fillna("").astype(str), format="ISO8601", errors="coerce")
        last = d.where(d.notna(), last)
    active = wide["first_block"].fillna("").astype(str).str.len() > 0
    deadline = last + pd.Timedelta(days=7 * (MAX_WEEKS_IN_STAGE - 1))
    return (~active & (deadline > pd.Timestamp(observed_until))).to_numpy()


def to_long(wide: pd.DataFrame) -> pd.DataFrame:
    """Long form of a wide applicant log: one row per reached stage, columns ``applicant_id,
    stage, date, depot, channel, vehicle, device, age``, sorted by applicant then stage order."""
    n = len(wide)
    stage = np.repeat(np.arange(len(STAGES))[None, :], n, axis=0).ravel()
    row = np.repeat(np.arange(n), len(STAGES))
    date = np.stack([wide[s].fillna("").astype(str).to_numpy() for s in STAGES], axis=1).ravel()
    keep = date != ""
    row, stage, date = row[keep], stage[keep], date[keep]
    out = pd.DataFrame({
        "applicant_id": wide["applicant_id"].to_numpy()[row],
        "stage": np.asarray(STAGES)[stage],
        "date": date,
        **{c: wide[c].to_numpy()[row] for c in LONG_COLUMNS[3:]},
    })
    return out


@dataclass(frozen=True)
class ActivityTruth:
    """True activity quantities per depot (see the module docstring): weekly ``retention``
    (tenure >= 4 weeks) and ``early_retention`` (tenure 0-3), ``blocks_per_driver`` per active
    driver-week, ``blocks_lambda``, ``skip_prob``, ``zero_week_prob``, and the log's first and
    last week (Mondays)."""

    retention: dict[str, float]
    early_retention: dict[str, float]
    blocks_per_driver: dict[str, float]
    blocks_lambda: dict[str, float]
    skip_prob: dict[str, float]
    zero_week_prob: dict[str, float]
    first_week: dt.date
    last_week: dt.date
    season: dict[int, float] | None = None  # ISO week of year -> true index of blocks per active driver-week


def activity_params(depots: int = 5) -> dict[str, np.ndarray]:
    """True activity parameters per depot (fixed functions of the depot index): ``driver_weight``,
    ``hazard`` (weekly churn, tenure >= 4), ``early_hazard`` (tenure 0-3), ``blocks_lambda``,
    ``skip_prob``."""
    _depot_ids(depots)
    i = np.arange(depots)
    hazard = np.round(0.02 + 0.04 * ((0.754878 * i + 0.1) % 1.0), 4)
    return {
        "driver_weight": _normalise(1.0 + 0.5 * np.sin(1.3 * i + 0.7)),
        "hazard": hazard,
        "early_hazard": hazard + 0.08,
        "blocks_lambda": np.round(2.5 + 2.0 * ((0.618034 * i + 0.05) % 1.0), 3),
        "skip_prob": np.round(0.05 + 0.10 * ((0.381966 * i + 0.2) % 1.0), 4),
    }


def generate_activity_log(
    n_drivers: int,
    seed: int,
    depots: int = 5,
    weeks: int = 52,
    start: dt.date = dt.date(2026, 1, 5),
    seasonal_amplitude: float = 0.0,
) -> tuple[pd.DataFrame, ActivityTruth]:
    """A driver-activity log from the true process and its truth.

    ``n_drivers``: drivers simulated (drivers who never worked a block in the log have no
    rows); ``seed``: sampling seed; ``depots``: number of depots; ``weeks``: weeks in the log;
    ``start``: a date in the first week (moved back to its Monday); ``seasonal_amplitude`` A:
    a driver's mean blocks in a week of ISO week of year k are blocks_lambda x
    ``supply_season(k, A)`` (0: none; the truth's ``season`` holds the index by week of year)."""
    if n_drivers < 0 or weeks < 1:
        raise ValueError("n_drivers must be >= 0 and weeks >= 1")
    ids = _depot_ids(depots)
    p = activity_params(depots)
    monday = start - dt.timedelta(days=start.weekday())
    rng = np.random.default_rng(seed)
    n, W = n_drivers, weeks
    depot = np.minimum(np.searchsorted(np.cumsum(p["driver_weight"]), rng.random(n), side="right"), depots - 1)
    initial = rng.random(n) < 0.5
    first = np.where(initial, 0, rng.integers(0, W, n))
    tenure0 = np.where(initial, rng.integers(0, 104, n), 0)
    churn_u = rng.random((n, W))
    woy = np.array([(monday + dt.timedelta(weeks=w)).isocalendar()[1] for w in range(W)])
    blocks = rng.poisson(p["blocks_lambda"][depot][:, None] * supply_season(woy, seasonal_amplitude)[None, :], (n, W))
    skip = rng.random((n, W)) < p["skip_prob"][depot][:, None]

    alive = np.zeros((n, W), dtype=bool)
    state = np.zeros(n, dtype=bool)
    early, late = p["early_hazard"][depot], p["hazard"][depot]
    for w in range(W):
        state |= first == w
        alive[:, w] = state
        tenure = tenure0 + w - first
        state &= ~(churn_u[:, w] < np.where(tenure < EARLY_WEEKS, early, late))
    worked = alive & ~skip & (blocks > 0)
    drv, wk = np.nonzero(worked)  # row-major: sorted by driver, then week
    week_dates = np.datetime64(monday, "D") + 7 * np.arange(W)
    log = pd.DataFrame({
        "driver_id": np.char.add("R", np.char.zfill((drv + 1).astype(str), 7)),
        "depot": np.asarray(ids)[depot[drv]],
        "week": np.datetime_as_string(week_dates[wk], unit="D"),
        "blocks": blocks[drv, wk].astype(np.int64),
    })
    lam, sk = p["blocks_lambda"], p["skip_prob"]
    truth = ActivityTruth(
        retention={d: float(1.0 - p["hazard"][i]) for i, d in enumerate(ids)},
        early_retention={d: float(1.0 - p["early_hazard"][i]) for i, d in enumerate(ids)},
        blocks_per_driver={d: float(lam[i] * (1.0 - sk[i])) for i, d in enumerate(ids)},
        blocks_lambda={d: float(lam[i]) for i, d in enumerate(ids)},
        skip_prob={d: float(sk[i]) for i, d in enumerate(ids)},
        zero_week_prob={d: float(sk[i] + (1.0 - sk[i]) * np.exp(-lam[i])) for i, d in enumerate(ids)},
        first_week=monday,
        last_week=monday + dt.timedelta(weeks=W - 1),
        season={k: float(supply_season(np.array([k]), seasonal_amplitude)[0]) for k in range(1, 54)},
    )
    return log, truth


def supply_season(week_of_year: np.ndarray, amplitude: float) -> np.ndarray:
    """The true seasonal index of blocks per active driver by ISO week of year:
    1 + A sin(2 pi (k - 1) / 52) (unitless; mean 1 over a year's 52 weeks)."""
    return 1.0 + amplitude * np.sin(2 * np.pi * (np.asarray(week_of_year, float) - 1) / 52.0)
