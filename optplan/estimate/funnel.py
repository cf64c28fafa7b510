"""Onboarding funnel as a weekly Markov chain with logistic-regression transitions.

Stages (configurable; default applied -> background_check -> onboarding -> first_block).
An applicant who entered stage j and has spent tau whole weeks in it (tau = days // 7)
moves on during that week with probability

    h_j(tau, x) = sigmoid(w_j . features(tau, x))                  probability/week

a discrete-time hazard fitted by scikit-learn's LogisticRegression on applicant-week rows:
time-in-stage one-hot (weeks 0..B-1 and "B or more"), so delays need not be geometric,
plus the channel and covariates (categorical one-hot, numeric standardised). Someone who
has not moved on after ``max_weeks_in_stage`` weeks has dropped out (the "dropped"
absorbing state); reaching the last stage is the "active" absorbing state.

Censoring: an applicant still in a stage at ``observed_until`` contributes only the whole
weeks observed there, as "not moved on"; they are not counted as drop-outs. (The naive
estimator that treats them as drop-outs is biased low; ``naive_conversion`` computes it
for comparison.)

From the fitted chain: per channel the yield kernel (probability of being first active k
weeks after applying, k = sum of the stage weeks), its conversion rate, and the mean and
median weeks to first block among converts, averaged over the channel's observed covariate
mix; bootstrap confidence intervals (``bootstrap``: applicants resampled with Poisson(1)
weights, estimate +- Student-t quantile x bootstrap standard deviation) and, as a
cross-check without resampling noise, delta-method standard errors of the conversion
(``conversion_standard_errors``).

Rows are aggregated to unique (features, outcome) groups with counts as sample weights, so
a fit on 50,000 applicants takes a fraction of a second; bootstrap refits reuse the
weight-independent part of the fit (dates, design, applicant-week rows), about 0.1 s each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from optplan.errors import OptionError
from optplan.progress import progress

DEFAULT_STAGES = ("applied", "background_check", "onboarding", "first_block")
ID_COLUMNS = ("applicant_id", "depot", "channel", "observed_until")
#: Optional column of a log: each applicant's own end of observation (a date; empty: the
#: log's observed_until). Real logs often follow each applicant for a window after applying.
WINDOW_COLUMN = "observed_until"


def observation_ends(log: pd.DataFrame, observed) -> np.ndarray:
    """(n,) datetime64[D]: each applicant's end of observation, the earlier of the log's
    ``observed`` (datetime64[D]) and the applicant's own ``observed_until`` where given."""
    ends = np.full(len(log), observed, dtype="datetime64[D]")
    if WINDOW_COLUMN in log.columns:
        own = pd.to_datetime(log[WINDOW_COLUMN], errors="coerce").to_numpy("datetime64[D]")
        ends = np.where(~np.isnat(own) & (own < ends), own, ends)
    return ends


def person_weeks(n_rows: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand per-person counts of weeks at risk into person-week rows (vectorised).

    Returns (person index, week number 0.., outcome) where the outcome is 1 on the last row
    of each person with ``event`` set (the week they moved on or churned)."""
    n_rows = np.maximum(np.asarray(n_rows, dtype=np.int64), 0)
    idx = np.repeat(np.arange(len(n_rows)), n_rows)
    starts = np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    week = np.arange(len(idx)) - starts
    outcome = np.zeros(len(idx), dtype=np.int8)
    outcome[np.cumsum(n_rows)[np.asarray(event, bool) & (n_rows > 0)] - 1] = 1
    return idx, week, outcome


def _expand_weeks(entered: np.ndarray, advanced: np.ndarray, observed_until, max_weeks: int):
    """Applicant-week rows of one stage.

    entered, advanced: datetime64[D] arrays (advanced NaT if not observed); observed_until:
    one date or one per applicant (their own window). Returns
    (row_applicant_index, tau, moved_on) arrays."""
    obs_days = (observed_until - entered).astype("timedelta64[D]").astype(np.int64)
    full_weeks = np.maximum(obs_days // 7, 0)  # weeks fully observed before observed_until
    has_adv = ~np.isnat(advanced)
    adv_days = np.where(has_adv, (advanced - entered).astype("timedelta64[D]").astype(np.int64), 0)
    adv_week = adv_days // 7
    # a move counts only in a fully observed week, like a non-move; later moves are censored
    moved_in_window = has_adv & (adv_week < full_weeks) & (adv_week < max_weeks)
    n_rows = np.where(moved_in_window, adv_week + 1, np.minimum(full_weeks, max_weeks))
    return person_weeks(n_rows, moved_in_window)


class FunnelModel(BaseEstimator):
    """Weekly discrete-time hazard model of the onboarding funnel (scikit-learn contract).

    Parameters (keyword-only):
        stages: stage column names in order; the first is the application date.
        max_weeks_in_stage: weeks after which someone who has not moved on has dropped out.
        tau_buckets: time-in-stage weeks 0..tau_buckets-1 get their own coefficient; the
            rest share one.
        covariates: covariate columns to use (None: every column not an id or a stage).
        C: inverse L2 regularisation strength of each stage's LogisticRegression.
        depot_effects: add the depot as a categorical feature, so that kernels can differ by
            depot beyond their covariate mix (see ``yield_kernels(by="depot")``).
    """

    def __init__(self, *, stages=DEFAULT_STAGES, max_weeks_in_stage: int = 26, tau_buckets: int = 9,
                 covariates=None, C: float = 1e3, depot_effects: bool = False):
        self.stages = stages
        self.max_weeks_in_stage = max_weeks_in_stage
        self.tau_buckets = tau_buckets
        self.covariates = covariates
        self.C = C
        self.depot_effects = depot_effects

    # ------------------------------------------------------------------ design
    def _profile_matrix(self, profiles: pd.DataFrame) -> np.ndarray:
        """Covariate part of the design for each profile (one-hot / standardised)."""
        blocks = []
        for col in ["channel", *self.covariates_]:
            if col in self.numeric_:
                mean, std = self.numeric_[col]
                blocks.append(((profiles[col].to_numpy(float) - mean) / std)[:, None])
            else:
                levels = self.levels_[col]
                onehot = (profiles[col].astype(str).to_numpy()[:, None] == np.asarray(levels)[None, 1:]).astype(float)
                blocks.append(onehot)  # first level is the reference
        return np.hstack(blocks) if blocks else np.zeros((len(profiles), 0))

    def _design(self, tau: np.ndarray, profile_x: np.ndarray) -> np.ndarray:
        B = self.tau_buckets
        bucket = np.minimum(tau, B)
        onehot = np.zeros((len(tau), B + 1))
        onehot[np.arange(len(tau)), bucket] = 1.0
        return np.hstack([onehot, profile_x])

    # ------------------------------------------------------------------ fit
    def fit(self, log: pd.DataFrame, y=None, observed_until=None, sample_weight=None) -> FunnelModel:
        """Fit on a wide applicant log (one row per applicant, a date column per stage).

        ``sample_weight``: per-applicant weights (the bootstrap uses Poisson(1) weights)."""
        prepared = self._prepare(log, observed_until)
        weight = np.ones(prepared["n"]) if sample_weight is None else np.asarray(sample_weight, float)
        return self._fit_prepared(prepared, weight)

    def _prepare(self, log: pd.DataFrame, observed_until=None) -> dict:
        """The part of a fit that does not depend on the applicant weights (dates, design,
        applicant-week rows), so that bootstrap refits can reuse it. Returns the fitted
        attributes that describe the design (``attrs``) and the rows."""
        stages = list(self.stages)
        log = log.reset_index(drop=True)
        dates = {s: pd.to_datetime(log[s], errors="coerce").to_numpy("datetime64[D]") for s in stages}
        if observed_until is None:
            observed_until = max(np.nanmax(d[~np.isnat(d)]) for d in dates.values() if (~np.isnat(d)).any())
        observed = np.datetime64(pd.Timestamp(observed_until).date(), "D")
        covariates = list(self.covariates) if self.covariates is not None else [
            c for c in log.columns if c not in (*ID_COLUMNS, *stages)]
        if self.depot_effects and "depot" not in covariates:
            covariates.append("depot")
        numeric, levels = {}, {}
        for col in ["channel", *covariates]:
            values = log[col]
            if col != "channel" and pd.api.types.is_numeric_dtype(values):
                std = float(values.std(ddof=0))
                mean = float(values.mean())
                numeric[col] = (mean if np.isfinite(mean) else 0.0, std if np.isfinite(std) and std > 0 else 1.0)
            else:
                levels[col] = sorted(values.astype(str).unique())
        profiles, inverse = _unique_rows(log[["channel", *covariates]])
        attrs = {"observed_until_": observed, "covariates_": covariates, "numeric_": numeric, "levels_": levels,
                 "channels_": levels["channel"], "profiles_": profiles}
        stage_rows = []
        support = []  # per transition: the most weeks in stage seen (capped at tau_buckets; -1: none)
        ends = observation_ends(log, observed)  # per applicant (their own window where the log has one)
        for j in range(len(stages) - 1):
            entered, advanced = dates[stages[j]], dates[stages[j + 1]]
            # only applicants observed to enter the stage; later stages after their end of observation are censored
            ok = ~np.isnat(entered) & (entered <= ends)
            adv = np.where(~np.isnat(advanced) & (advanced <= ends), advanced, np.datetime64("NaT"))
            rows = np.flatnonzero(ok)
            idx, tau, moved = _expand_weeks(entered[rows], adv[rows], ends[rows], self.max_weeks_in_stage)
            applicant = rows[idx]
            bucket = np.minimum(tau, self.tau_buckets)
            support.append(int(bucket.max()) if len(bucket) else -1)
            # (bucket, profile, outcome) group of each applicant-week row
            stage_rows.append((applicant, (bucket * len(profiles) + inverse[applicant]) * 2 + moved))
        # the covariate mix each kernel is averaged over: (depot, channel, profile) groups
        mix = pd.DataFrame({"depot": log["depot"].astype(str), "channel": log["channel"].astype(str), "profile": inverse})
        grouped = mix.groupby(["depot", "channel", "profile"])
        attrs["support_"] = support
        return {"n": len(log), "attrs": attrs, "stage_rows": stage_rows, "mix_group": grouped.ngroup().to_numpy(),
                "mix_index": grouped.size().index}

    def _fit_prepared(self, prepared: dict, weight: np.ndarray) -> FunnelModel:
        """Fit the stage models with per-applicant ``weight`` on prepared rows."""
        for name, value in prepared["attrs"].items():
            setattr(self, name, value)
        P = len(self.profiles_)
        px = self._profile_matrix(self.profiles_)
        self.stage_models_ = []
        self.stage_rows_ = []
        self.stage_covariance_ = []
        self.constant_stages_ = {}  # transition 'a -> b': its constant weekly hazard (no regression possible)
        for j, (applicant, key) in enumerate(prepared["stage_rows"]):
            counts = np.bincount(key, weights=weight[applicant], minlength=(self.tau_buckets + 1) * P * 2)
            nz = np.flatnonzero(counts > 0)
            g_moved = nz % 2
            g_prof = (nz // 2) % P
            g_bucket = (nz // 2) // P
            X = self._design(g_bucket, px[g_prof])
            if np.unique(g_moved).size < 2:
                # nobody in the stage, or every applicant-week with the same outcome (nobody moved
                # on / everyone moved on in their first week): no regression to fit, the hazard
                # is that observed share, the same for everyone (0 with no data at all)
                moved = float(counts[nz] @ g_moved) if nz.size else 0.0
                model = ConstantHazard(moved / float(counts[nz].sum()) if nz.size else 0.0, X.shape[1])
                self.constant_stages_[f"{self.stages[j]} -> {self.stages[j + 1]}"] = model.p
                self.stage_covariance_.append(np.zeros((X.shape[1], X.shape[1])))
            else:
                model = LogisticRegression(C=self.C, max_iter=2000, tol=1e-8)
                model.fit(X, g_moved, sample_weight=counts[nz])
                self.stage_covariance_.append(_coef_covariance(model, X, counts[nz]))
            self.stage_models_.append(model)
            self.stage_rows_.append(int(len(applicant)))
        # the mix weighted like the fit, so that a bootstrap resamples the mix too (not only the hazards)
        sums = np.bincount(prepared["mix_group"], weights=weight, minlength=len(prepared["mix_index"]))
        counts = pd.Series(sums, index=prepared["mix_index"])
        self.depot_profile_counts_ = counts[counts > 0]
        self.profile_counts_ = self.depot_profile_counts_.groupby(level=["channel", "profile"]).sum()
        return self

    # ------------------------------------------------------------------ predictions
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of moving on this week for rows with columns ``stage`` (0-based
        transition index), ``tau`` (whole weeks in the stage), channel and covariates;
        returns (n, 2) [stay or drop, move on]."""
        check_is_fitted(self, "stage_models_")
        out = np.zeros((len(X), 2))
        px = self._profile_matrix(X.reset_index(drop=True))
        stage = X["stage"].to_numpy()
        tau = X["tau"].to_numpy()
        for j, model in enumerate(self.stage_models_):
            m = stage == j
            if m.any():
                out[m] = model.predict_proba(self._design(tau[m], px[m]))
        return out

    def _hazards(self, px: np.ndarray) -> np.ndarray:
        """(P, J, W) hazards per profile, stage transition and week in stage; 0 beyond the
        weeks in stage the log shows (``supported``)."""
        W = self.max_weeks_in_stage
        P = len(px)
        out = np.zeros((P, len(self.stage_models_), W))
        tau = np.tile(np.arange(W), P)
        X = self._design(tau, np.repeat(px, W, axis=0))
        for j, model in enumerate(self.stage_models_):
            out[:, j, :] = model.predict_proba(X)[:, 1].reshape(P, W)
        return out * self.supported(W)[None]

    def supported(self, W: int) -> np.ndarray:
        """(J, W) True for the weeks in stage whose hazard the log supports. Weeks in stage
        are pooled from ``tau_buckets`` on; a stage seen for fewer weeks than that gives no
        information on its later weeks, and a hazard there would be the regulariser's guess,
        extrapolated to ``max_weeks_in_stage`` weeks (conversion 32-52% where the data showed
        6-20%): it is taken as 0, so conversion and yields are lower bounds, and
        ``unsupported_weeks`` says where."""
        mask = np.ones((len(self.stage_models_), W), dtype=bool)
        for j, last in enumerate(getattr(self, "support_", [])):
            if last < self.tau_buckets:
                mask[j, last + 1:] = False
        return mask

    def unsupported_weeks(self) -> dict[str, int]:
        """{'a -> b': weeks in stage the log shows} for the transitions seen for fewer than
        ``tau_buckets`` + 1 weeks (whose later hazards are taken as 0)."""
        return {f"{self.stages[j]} -> {self.stages[j + 1]}": last + 1
                for j, last in enumerate(getattr(self, "support_", [])) if last < self.tau_buckets}

    def _kernels_by_profile(self) -> np.ndarray:
        """(P, K) probability of first being active k weeks after applying, per profile."""
        h = self._hazards(self._profile_matrix(self.profiles_))
        survive = np.cumprod(1 - h, axis=2)
        first = h * np.concatenate([np.ones(h.shape[:2] + (1,)), survive[:, :, :-1]], axis=2)  # (P, J, W)
        kernel = first[:, 0, :]
        for j in range(1, first.shape[1]):
            kernel = _convolve_rows(kernel, first[:, j, :])
        return kernel

    def yield_kernels(self, trim: float = 1e-6, by: str = "channel", min_applicants: int = 500) -> pd.DataFrame:
        """Probability of first being active k weeks after applying, averaged over the observed
        covariate mix: per channel (the instance's yield.csv format), or with ``by="depot"``
        per depot and channel, for groups with at least ``min_applicants`` applicants (where
        the data supports it; fit with ``depot_effects=True`` for hazards that differ by
        depot beyond the mix)."""
        check_is_fitted(self, "stage_models_")
        if by not in ("channel", "depot"):
            raise OptionError("by", "'channel' or 'depot'", by)
        kp = self._kernels_by_profile()
        rows = []
        groups = [((), self.profile_counts_.xs(c, level="channel")) for c in self.channels_] if by == "channel" else [
            ((d,), g.droplevel(["depot", "channel"])) for (d, c), g in self.depot_profile_counts_.groupby(level=["depot", "channel"])
            if g.sum() >= min_applicants]
        names = self.channels_ if by == "channel" else [
            c for (d, c), g in self.depot_profile_counts_.groupby(level=["depot", "channel"]) if g.sum() >= min_applicants]
        for (key, counts), channel in zip(groups, names, strict=True):
            w = np.zeros(len(self.profiles_))
            w[counts.index.to_numpy()] = counts.to_numpy(float)
            k = (w / w.sum()) @ kp
            last = int(np.max(np.flatnonzero(k > trim), initial=0))
            for lag in range(last + 1):
                row = {"channel": channel, "lag": lag, "probability": float(k[lag])}
                if key:
                    row = {"depot": key[0], **row, "applicants": int(counts.sum())}
                rows.append(row)
        return pd.DataFrame(rows)

    def _channel_weights(self, channel: str) -> np.ndarray:
        """The channel's covariate mix as weights over profiles; all NaN when the fit gave the
        channel no weight (a bootstrap resample without its applicants)."""
        present = self.profile_counts_.index.get_level_values("channel")
        counts = self.profile_counts_.xs(channel, level="channel") if channel in present else pd.Series(dtype=float)
        w = np.zeros(len(self.profiles_))
        w[counts.index.to_numpy()] = counts.to_numpy(float)
        total = w.sum()
        return w / total if total > 0 else np.full(len(w), np.nan)

    def channel_summary(self) -> pd.DataFrame:
        """Per channel: conversion, mean and median weeks to first block among converts."""
        kp = self._kernels_by_profile()
        rows = []
        for channel in self.channels_:
            k = self._channel_weights(channel) @ kp
            conv = float(k.sum())
            lags = np.arange(len(k))
            mean = float((lags * k).sum() / conv) if conv > 0 else float("nan")
            cdf = np.cumsum(k) / conv if conv > 0 else np.zeros_like(k)
            median = float(np.argmax(cdf >= 0.5)) if conv > 0 else float("nan")
            rows.append({"channel": channel, "conversion": conv, "mean_weeks_to_first_block": mean,
                         "median_weeks_to_first_block": median})
        return pd.DataFrame(rows)


class ConstantHazard:
    """A stage whose data admits no regression (one outcome only): the same weekly hazard
    ``p`` for every applicant and week in the stage; quacks like a fitted LogisticRegression
    where the funnel uses one (``predict_proba``, ``coef_``)."""

    def __init__(self, p: float, n_features: int):
        self.p = float(p)
        self.coef_ = np.zeros((1, n_features))
        self.intercept_ = np.zeros(1)
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), 2))
        out[:, 1] = self.p
        out[:, 0] = 1.0 - self.p
        return out


def _coef_covariance(model: LogisticRegression, X: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Asymptotic covariance of one stage's coefficients (inverse observed information of the
    weighted log-likelihood, X' diag(n p (1 - p)) X), in the parametrisation without the
    intercept: the time-in-stage one-hot covers every row, so it absorbs the intercept and the
    linear predictor is X @ beta. The L2 penalty is left out (negligible at the default C)."""
    p = model.predict_proba(X)[:, 1]
    info = (X * (counts * p * (1.0 - p))[:, None]).T @ X
    return np.linalg.pinv(info, hermitian=True)


def _unique_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Unique rows of ``df`` (in order of first appearance, values compared as strings) and
    each row's index into them."""
    codes = np.zeros(len(df), dtype=np.int64)
    for col in df.columns:
        col_codes, uniques = pd.factorize(df[col].astype(str))
        codes, _ = pd.factorize(codes * max(len(uniques), 1) + col_codes)  # re-compacted: stays < len(df)
    _, first = np.unique(codes, return_index=True)
    return df.iloc[first].reset_index(drop=True), codes


def _convolve_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise full convolution of two (P, n) and (P, m) arrays."""
    n, m = a.shape[1], b.shape[1]
    size = n + m - 1
    fa = np.fft.rfft(a, size, axis=1)
    fb = np.fft.rfft(b, size, axis=1)
    out = np.fft.irfft(fa * fb, size, axis=1)
    return np.maximum(out, 0.0)


def naive_conversion(log: pd.DataFrame, stages=DEFAULT_STAGES) -> pd.Series:
    """Share of each channel's applicants who reached the last stage, treating everyone not
    there yet as a drop-out (biased low under censoring; for comparison only)."""
    reached = log[list(stages)[-1]].notna() & log[list(stages)[-1]].astype(str).str.len().gt(0)
    return reached.groupby(log["channel"]).mean()


def conversion_standard_errors(model: FunnelModel) -> pd.Series:
    """Delta-method standard error of each channel's conversion (probability), indexed by
    channel: a cross-check of ``bootstrap`` without resampling noise.

    conversion_c = sum_p w_p conv_p, with w_p the channel's covariate mix as fitted (the sample
    mix) and conv_p = prod_j q_pj, q_pj = 1 - prod_tau (1 - h_j(tau, x_p)) the probability of
    ever leaving stage j. Two independent parts of the variance:

    * hazards: dq_pj / deta_pj(tau) = (1 - q_pj) h_pj(tau), so the gradient with respect to
      stage j's coefficients is g_j = sum_p w_p conv_p (1 - q_pj) / q_pj sum_tau h_pj(tau)
      x(tau, p); variance sum_j g_j' V_j g_j with V_j the inverse observed information
      (``stage_covariance_``; the stages have separate likelihoods, hence independent);
    * mix: the sample mix estimates the channel's population mix, variance
      sum_p w_p (conv_p - conversion_c)^2 / n_c (n_c the channel's applicants; uncorrelated
      with the hazard estimates, whose scores have mean zero given the covariates).
    """
    check_is_fitted(model, "stage_models_")
    px = model._profile_matrix(model.profiles_)
    W = model.max_weeks_in_stage
    P = len(px)
    X = model._design(np.tile(np.arange(W), P), np.repeat(px, W, axis=0))
    h = np.stack([m.predict_proba(X)[:, 1].reshape(P, W) for m in model.stage_models_], axis=1)  # (P, J, W)
    h = h * model.supported(W)[None]  # as in FunnelModel._hazards
    q = 1.0 - np.prod(1.0 - h, axis=2)  # (P, J)
    conv = q.prod(axis=1)
    out = {}
    for channel in model.channels_:
        w = model._channel_weights(channel)
        var = 0.0
        for j, cov in enumerate(model.stage_covariance_):
            ratio = np.divide(1.0 - q[:, j], q[:, j], out=np.zeros(P), where=q[:, j] > 0)  # q = 0: conv = 0 too
            d_eta = (w * conv * ratio)[:, None] * h[:, j, :]  # d conversion / d eta, (P, W)
            g = d_eta.reshape(-1) @ X
            var += float(g @ cov @ g)
        n_c = float(model.profile_counts_.xs(channel, level="channel").sum())
        var += float(w @ (conv - w @ conv) ** 2) / n_c
        out[channel] = np.sqrt(var)
    return pd.Series(out, name="conversion_se_delta").rename_axis("channel")


def bootstrap(model: FunnelModel, log: pd.DataFrame, n: int = 50, seed: int = 0, observed_until=None,
              level: float = 0.95, show_progress: bool = False) -> pd.DataFrame:
    """Bootstrap confidence intervals of each channel's conversion and mean weeks to first block.

    Resampling: applicants (clusters of applicant-weeks, not single rows) with Poisson(1)
    weights, so an applicant's weeks in every stage and their place in the covariate mix move
    together; the model is refitted with the same hyperparameters and observation window
    (``observed_until`` defaults to the model's).

    Interval: estimate +- t * s, s the standard deviation of the ``n`` resampled estimates and t
    the Student-t quantile with n - 1 degrees of freedom (not the normal quantile): s is itself
    estimated from n resamples, and with the estimate normal around the truth and the resamples
    normal around the estimate, (estimate - truth) / s has a t distribution with n - 1 degrees
    of freedom, so the interval covers at the nominal rate; with the normal quantile it covers
    less (94.0% instead of 95% at n = 30). Normal-theory intervals rather than percentiles,
    which need thousands of resamples for a 95% interval. Checked against the truth on
    synthetic logs (docs/estimation.md): over hundreds of seeds the bootstrap standard
    deviation matches the spread of the estimate across seeds and the delta-method standard
    error (``conversion_standard_errors``) within a few percent.

    Returns per channel: conversion_low, conversion_high, mean_weeks_low, mean_weeks_high (the
    interval) and conversion_se, mean_weeks_se (s)."""
    from scipy.stats import t as student_t
    from threadpoolctl import threadpool_limits

    check_is_fitted(model, "stage_models_")
    rng = np.random.default_rng(seed)
    point = model.channel_summary().set_index("channel")
    prepared = clone(model)._prepare(log, model.observed_until_ if observed_until is None else observed_until)
    draws = []
    # the refits multiply small matrices: more BLAS threads only contend (badly on a busy machine)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in progress(range(n), "funnel bootstrap", "refit", show=show_progress):
            w = rng.poisson(1.0, size=prepared["n"]).astype(float)
            draws.append(clone(model)._fit_prepared(prepared, w).channel_summary())
    sd = pd.concat(draws).groupby("channel")[["conversion", "mean_weeks_to_first_block"]].std(ddof=1)
    t = float(student_t.ppf(0.5 + level / 2, df=n - 1))
    out = pd.DataFrame({
        "conversion_low": point["conversion"] - t * sd["conversion"],
        "conversion_high": point["conversion"] + t * sd["conversion"],
        "mean_weeks_low": point["mean_weeks_to_first_block"] - t * sd["mean_weeks_to_first_block"],
        "mean_weeks_high": point["mean_weeks_to_first_block"] + t * sd["mean_weeks_to_first_block"],
        "conversion_se": sd["conversion"],
        "mean_weeks_se": sd["mean_weeks_to_first_block"],
    })
    return out.rename_axis("channel").reset_index()


def calibration(model: FunnelModel, log: pd.DataFrame, observed_until=None, bins: int = 10) -> tuple[float, pd.DataFrame]:
    """Brier score and reliability table of the weekly move-on probabilities on ``log``
    (typically held-back applicants): predicted against observed rates by probability bin."""
    check_is_fitted(model, "stage_models_")
    stages = list(model.stages)
    observed = model.observed_until_ if observed_until is None else np.datetime64(pd.Timestamp(observed_until).date(), "D")
    dates = {s: pd.to_datetime(log[s], errors="coerce").to_numpy("datetime64[D]") for s in stages}
    px = model._profile_matrix(log.reset_index(drop=True))
    ends = observation_ends(log.reset_index(drop=True), observed)
    preds, outcomes, stage_of = [], [], []
    for j, m in enumerate(model.stage_models_):
        entered, advanced = dates[stages[j]], dates[stages[j + 1]]
        ok = ~np.isnat(entered) & (entered <= ends)
        adv = np.where(~np.isnat(advanced) & (advanced <= ends), advanced, np.datetime64("NaT"))
        rows = np.flatnonzero(ok)
        idx, tau, moved = _expand_weeks(entered[rows], adv[rows], ends[rows], model.max_weeks_in_stage)
        p = m.predict_proba(model._design(tau, px[rows[idx]]))[:, 1]
        preds.append(p)
        outcomes.append(moved)
        stage_of.append(np.full(len(p), j))
    p = np.concatenate(preds)
    y = np.concatenate(outcomes).astype(float)
    brier = float(np.mean((p - y) ** 2))
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    table = pd.DataFrame({"bin": which, "predicted": p, "observed": y}).groupby("bin").agg(
        rows=("observed", "size"), mean_predicted=("predicted", "mean"), observed_rate=("observed", "mean")).reset_index()
    return brier, table
