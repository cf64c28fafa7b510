"""Driver retention and capacity per driver from an activity log.

Input: one row per driver and week worked (driver_id, depot, week = the week's first day,
one weekday for all rows, e.g. Monday; blocks; optional constant covariates such as vehicle). A week without a row is a week with
0 blocks.

Churn: a driver churns after the last week they work. Whether someone has churned is only
known ``gap`` weeks later, so a driver whose last worked week lies within the log's last
``gap`` weeks is censored (still active), and churn weeks are only scored up to ``gap``
weeks before the log's end.

Model: per depot, the weekly churn hazard is a logistic regression (scikit-learn) on tenure
(weeks since the first worked week; one-hot buckets 0, 1, 2, 3, 4-7, 8-15, 16+) plus
covariates, fitted on driver-week rows aggregated with counts as sample weights. One model
per depot lets each depot have its own tenure profile (a shared profile shifted by a depot
effect on the logit scale biased retention by up to 0.003 when depots differ in shape).
Tenure counts from the first week in the log: drivers already active when it starts look
new, which muddles the first-weeks rate (``retention_new``) but not ``retention``.

Outputs per depot:
    retention           1 - mean predicted hazard over the depot's established driver-weeks
                        (tenure >= 4 weeks)                                  probability/week
    retention_new       the same over tenure weeks 0-3                       probability/week
    blocks_per_driver   blocks worked per active driver-week (first to last worked week, weeks
                        off included as 0, plus the expected unseen active weeks after a
                        churned driver's last row: r z / (1 - r z), z = share of active weeks
                        without a row inside drivers' spans)                 blocks/driver/week
    active_drivers      drivers not churned at the end of the log            drivers
and tenure curves (probability of still driving t weeks after the first block).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from optplan.estimate.funnel import person_weeks
from optplan.progress import progress

TENURE_EDGES = (0, 1, 2, 3, 4, 8, 16)  # bucket b holds tenure in [edge_b, edge_{b+1})
ESTABLISHED_WEEKS = 4


def tenure_bucket(tenure: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(TENURE_EDGES), tenure, side="right") - 1


class RetentionModel(BaseEstimator):
    """Weekly churn hazard of active drivers (scikit-learn contract).

    Parameters (keyword-only):
        gap: weeks without work after which a driver counts as churned.
        covariates: covariate columns (None: every column but driver_id, depot, week, blocks).
        C: inverse L2 regularisation strength.
    """

    def __init__(self, *, gap: int = 4, covariates=None, C: float = 1e3):
        self.gap = gap
        self.covariates = covariates
        self.C = C

    def fit(self, log: pd.DataFrame, y=None, observed_until=None, driver_weight=None) -> RetentionModel:
        """Fit on an activity log. ``driver_weight``: optional weight per driver id (the
        bootstrap uses Poisson(1) weights)."""
        week = pd.to_datetime(log["week"]).to_numpy("datetime64[D]")
        origin = week.min()
        w = ((week - origin).astype(np.int64) // 7).astype(int)
        end = int(w.max()) if observed_until is None else int(
            (np.datetime64(pd.Timestamp(observed_until).date(), "D") - origin).astype(np.int64) // 7)
        self.covariates_ = list(self.covariates) if self.covariates is not None else [
            c for c in log.columns if c not in ("driver_id", "depot", "week", "blocks")]
        frame = pd.DataFrame({"driver_id": log["driver_id"].astype(str), "depot": log["depot"].astype(str), "w": w,
                              "blocks": log["blocks"].to_numpy(float)})
        for c in self.covariates_:
            frame[c] = log[c].to_numpy()
        drivers = frame.groupby("driver_id", sort=True).agg(
            depot=("depot", "first"), first=("w", "min"), last=("w", "max"), blocks=("blocks", "sum"),
            rows=("w", "size"),
            **{c: (c, "first") for c in self.covariates_})
        scored_until = end - self.gap
        churned = drivers["last"].to_numpy() <= scored_until
        first = drivers["first"].to_numpy()
        last = drivers["last"].to_numpy()
        stop = np.where(churned, last, scored_until)  # last week at risk that is scored
        idx, tenure, event = person_weeks(stop - first + 1, churned)
        self.depots_ = sorted(drivers["depot"].unique())
        self.levels_ = {c: sorted(drivers[c].astype(str).unique()) for c in self.covariates_
                        if not pd.api.types.is_numeric_dtype(drivers[c])}
        self.numeric_ = {c: (float(drivers[c].mean()), float(drivers[c].std()) or 1.0) for c in self.covariates_
                         if pd.api.types.is_numeric_dtype(drivers[c])}
        profile_x = self._profile_matrix(drivers.reset_index(drop=True))
        bucket = tenure_bucket(tenure)
        nb = len(TENURE_EDGES)
        # aggregate driver-weeks to (tenure bucket, profile, event) groups
        prof_codes, prof_first = _profile_codes(profile_x)
        wd = np.ones(len(drivers)) if driver_weight is None else drivers.index.map(driver_weight).to_numpy(float)
        depot_codes = pd.Index(self.depots_).get_indexer(drivers["depot"])
        self.models_ = {}
        for k, d in enumerate(self.depots_):
            mine = depot_codes[idx] == k
            key_d = (bucket[mine] * (prof_codes.max() + 1) + prof_codes[idx[mine]]) * 2 + event[mine]
            counts_d = np.bincount(key_d, weights=wd[idx[mine]], minlength=nb * (prof_codes.max() + 1) * 2)
            nz_d = np.flatnonzero(counts_d)
            X = self._design((nz_d // 2) // (prof_codes.max() + 1), profile_x[prof_first[(nz_d // 2) % (prof_codes.max() + 1)]])
            y_d = nz_d % 2
            if len(np.unique(y_d)) < 2:  # no churn (or only churn) seen at this depot: constant hazard
                self.models_[d] = float(np.average(y_d, weights=counts_d[nz_d])) if len(nz_d) else 0.0
                continue
            self.models_[d] = LogisticRegression(C=self.C, max_iter=2000, tol=1e-8).fit(X, y_d, sample_weight=counts_d[nz_d])
        hazard = self._hazard(depot_codes[idx], bucket, profile_x[idx])
        # per-depot summaries over the scored driver-weeks
        depot_of_row = drivers["depot"].to_numpy()[idx]
        rows = []
        at_risk_end = np.where(churned, last, end)
        weeks_at_risk = at_risk_end - first + 1
        interior = np.maximum(last - first - 1, 0)  # weeks strictly between first and last row: active
        interior_rows = np.maximum(drivers["rows"].to_numpy() - 2, 0)
        for d in self.depots_:
            est = (depot_of_row == d) & (tenure >= ESTABLISHED_WEEKS)
            new = (depot_of_row == d) & (tenure < ESTABLISHED_WEEKS)
            mine = drivers["depot"].to_numpy() == d
            retention = float(1 - np.average(hazard[est], weights=wd[idx][est])) if est.any() and wd[idx][est].sum() > 0 \
                else float("nan")
            # share of active weeks without a row, seen inside drivers' active spans; a churned
            # driver stays active rz / (1 - rz) unseen weeks after the last row on average
            z = float(1 - interior_rows[mine].sum() / interior[mine].sum()) if interior[mine].sum() else 0.0
            rz = (retention if np.isfinite(retention) else 0.0) * z
            unseen = rz / (1 - rz) * float((mine & churned).sum())
            rows.append({
                "depot": d,
                "retention": retention,
                "retention_new": float(1 - hazard[new].mean()) if new.any() else float("nan"),
                "blocks_per_driver": float(drivers["blocks"].to_numpy()[mine].sum() / (weeks_at_risk[mine].sum() + unseen)),
                "zero_week_share": z,
                "active_drivers": int((mine & ~churned).sum()),
                "drivers": int(mine.sum()),
                "churn_events": int((mine & churned).sum()),
            })
        self.depot_summary_ = pd.DataFrame(rows)
        self.n_driver_weeks_ = int(len(idx))
        self._drivers = drivers
        self._profile_x = profile_x
        return self

    def _profile_matrix(self, drivers: pd.DataFrame) -> np.ndarray:
        blocks = [np.zeros((len(drivers), 0))]
        for c in self.covariates_:
            if c in self.numeric_:
                mean, std = self.numeric_[c]
                blocks.append(((drivers[c].to_numpy(float) - mean) / std)[:, None])
            else:
                lv = self.levels_[c]
                blocks.append((drivers[c].astype(str).to_numpy()[:, None] == np.asarray(lv)[None, 1:]).astype(float))
        return np.hstack(blocks)

    def _hazard(self, depot_code: np.ndarray, bucket: np.ndarray, profile_x: np.ndarray) -> np.ndarray:
        out = np.zeros(len(bucket))
        for k, d in enumerate(self.depots_):
            m = depot_code == k
            if not m.any():
                continue
            model = self.models_[d]
            out[m] = model if isinstance(model, float) else model.predict_proba(self._design(bucket[m], profile_x[m]))[:, 1]
        return out

    @staticmethod
    def _design(bucket: np.ndarray, profile_x: np.ndarray) -> np.ndarray:
        onehot = np.zeros((len(bucket), len(TENURE_EDGES)))
        onehot[np.arange(len(bucket)), bucket] = 1.0
        return np.hstack([onehot, profile_x])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Churn probability this week for rows with ``tenure`` (weeks), ``depot`` and the
        covariates; returns (n, 2) [stays, churns]."""
        check_is_fitted(self, "models_")
        X = X.reset_index(drop=True)
        px = self._profile_matrix(X)
        h = self._hazard(pd.Index(self.depots_).get_indexer(X["depot"].astype(str)), tenure_bucket(X["tenure"].to_numpy()), px)
        return np.column_stack([1 - h, h])

    def tenure_curves(self, weeks: int = 52) -> pd.DataFrame:
        """Probability of still driving ``t`` weeks after the first block, per depot, for the
        depot's own covariate mix."""
        check_is_fitted(self, "models_")
        out = []
        drivers = self._drivers.reset_index(drop=True)
        t = np.arange(weeks)
        for d in self.depots_:
            px = self._profile_x[drivers["depot"].to_numpy() == d]
            k = self.depots_.index(d)
            h = self._hazard(np.full(weeks * len(px), k), np.repeat(tenure_bucket(t), len(px)),
                             np.tile(px, (weeks, 1))).reshape(weeks, len(px))
            survive = np.cumprod(1 - h, axis=0).mean(axis=1)
            out.append(pd.DataFrame({"depot": d, "tenure_weeks": t + 1, "still_driving": survive}))
        return pd.concat(out, ignore_index=True)


def _profile_codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code of each row's unique profile, and one row index per code."""
    if x.shape[1] == 0:
        return np.zeros(len(x), dtype=int), np.zeros(1, dtype=int)
    _, first, codes = np.unique(x, axis=0, return_index=True, return_inverse=True)
    return codes.ravel(), first


def bootstrap_retention(model: RetentionModel, log: pd.DataFrame, n: int = 50, seed: int = 0, observed_until=None,
                        level: float = 0.95, show_progress: bool = False) -> pd.DataFrame:
    """Bootstrap confidence interval of each depot's weekly retention: drivers (with all their
    weeks) resampled with Poisson(1) weights and the model refitted; interval estimate +- t * s,
    s the standard deviation of the ``n`` resampled retentions and t the Student-t quantile with
    n - 1 degrees of freedom, which accounts for s being estimated from n resamples (the normal
    quantile covers less than the nominal level: 94.0% instead of 95% at n = 30). Returns
    retention_low, retention_high and retention_se (= s) per depot."""
    from scipy.stats import t as student_t
    from threadpoolctl import threadpool_limits

    check_is_fitted(model, "models_")
    rng = np.random.default_rng(seed)
    ids = np.sort(log["driver_id"].astype(str).unique())
    draws = []
    # the refits multiply small matrices: more BLAS threads only contend (badly on a busy machine)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in progress(range(n), "retention bootstrap", "refit", show=show_progress):
            w = pd.Series(rng.poisson(1.0, size=len(ids)).astype(float), index=ids)
            m = RetentionModel(**model.get_params()).fit(log, observed_until=observed_until, driver_weight=w)
            draws.append(m.depot_summary_[["depot", "retention"]])
    sd = pd.concat(draws).groupby("depot")["retention"].std(ddof=1)
    point = model.depot_summary_.set_index("depot")["retention"]
    t = float(student_t.ppf(0.5 + level / 2, df=n - 1))
    return pd.DataFrame({"retention_low": point - t * sd, "retention_high": point + t * sd,
                         "retention_se": sd}).rename_axis("depot").reset_index()
