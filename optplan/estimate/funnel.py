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

Dependent stage durations (``latent_classes`` = K, at most; default 2): applicants who are
fast through one stage are fast through the next, so that converters are faster than
independent stages would make them (on logs with a latent speed, independent stages put
the mean time to first block up to 1.4 weeks late and conversion up to 0.05 off;
docs/estimation.md). Each applicant belongs to a latent class k that shifts every stage's
logit, with class shares pi_ck that depend on the applicant's channel c (channels differ
in who they bring: referrals are fast more often than agency applicants):

    h_jk(tau, x) = sigmoid(w_j . features(tau, x) + alpha_jk),   alpha_j0 = 0

(a discrete "frailty" in the sense of Heckman and Singer). Given the class, stage durations
are independent; given the covariates alone they are not. The parameters maximise the
marginal likelihood sum_a log sum_k pi_c(a)k prod_rows h^y (1 - h)^(1 - y) jointly over
stages, classes and shares (L-BFGS with its analytic gradient, from the independent fit).
With shares common to every channel (``class_shares_by=None``) a channel whose class mix
differs is fitted through its logit effects alone, which cannot move conversion and timing
apart: on a log whose fast share is 0.85 for referrals and 0.2 for agencies, agency
conversion came out 0.019 high and its timing 0.2-0.35 weeks late; with shares by channel
both are within 0.01 and 0.2 (tests/estimate/test_dependent_stages.py).

Number of classes by held-out likelihood: a fixed quarter of the applicants (weights, so
nothing is rebuilt) is held out, K = 1, 2, .. ``latent_classes`` are fitted on the rest,
and K classes replace the best smaller model only when their held-out log-likelihood is
higher by more than ``SELECTION_Z`` standard errors of the per-applicant difference (so
that a log without dependence keeps independent stages); the chosen K is then refitted on
every applicant from its held-out fit. ``mixture_`` says the held-out log-likelihoods, the
choice and why. Class 0 is the fast class.

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

import copy

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from optplan.errors import OptionError
from optplan.estimate.columns import BONUS_COLUMN, DEFAULT_STAGES, WINDOW_COLUMN
from optplan.progress import progress

ID_COLUMNS = ("applicant_id", "depot", "channel", "observed_until")


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
        latent_classes: at most this many latent speed classes shared by every stage (1:
            stage durations independent given the covariates; 2: fast and slow applicants
            when the held-out likelihood prefers them; the number is chosen from 1..K).
        class_shares_by: "channel" (each channel its own class shares) or None (one set of
            shares for every applicant).
        verbose: show a progress bar of the latent-class fit (L-BFGS iterations) on stderr;
            it is the slow part of a fit (seconds to a minute on 50,000 applicants).
    """

    def __init__(self, *, stages=DEFAULT_STAGES, max_weeks_in_stage: int = 26, tau_buckets: int = 9,
                 covariates=None, C: float = 1e3, depot_effects: bool = False, latent_classes: int = 2,
                 class_shares_by: str | None = "channel", verbose: bool = False):
        self.stages = stages
        self.max_weeks_in_stage = max_weeks_in_stage
        self.tau_buckets = tau_buckets
        self.covariates = covariates
        self.C = C
        self.depot_effects = depot_effects
        self.latent_classes = latent_classes
        self.class_shares_by = class_shares_by
        self.verbose = verbose

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
        channel_code = pd.Categorical(log["channel"].astype(str), categories=levels["channel"]).codes.astype(np.int64)
        return {"n": len(log), "attrs": attrs, "stage_rows": stage_rows, "mix_group": grouped.ngroup().to_numpy(),
                "mix_index": grouped.size().index, "channel_code": channel_code}

    def _fit_prepared(self, prepared: dict, weight: np.ndarray, start: np.ndarray | None = None) -> FunnelModel:
        """Fit the stage models with per-applicant ``weight`` on prepared rows. ``start``: the
        mixture's parameters to start from (a bootstrap refit starts from the point fit and
        keeps its number of classes); None: from the independent fit, classes chosen by BIC."""
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
        if self.class_shares_by not in ("channel", None):
            raise OptionError("class_shares_by", "'channel' or None", self.class_shares_by)
        self.n_classes_ = 1
        self.class_shares_ = np.ones((len(self.channels_), 1))  # (channel, class)
        self.mixture_ = {"classes": 1, "reason": "latent_classes=1"}
        if self.latent_classes > 1:
            self._fit_mixture(prepared, weight, start)
        return self

    # ------------------------------------------------------------------ latent classes
    def _independent_theta(self) -> np.ndarray:
        """The independent fit as mixture parameters with one class: per stage [intercept, coef]."""
        return np.concatenate([np.r_[m.intercept_[0], m.coef_[0]] for m in self.stage_models_])

    def _share_groups(self, prepared: dict) -> tuple[np.ndarray, int]:
        """Per applicant the index of their class shares, and how many sets there are."""
        if self.class_shares_by == "channel":
            return prepared["channel_code"], len(self.channels_)
        return np.zeros(prepared["n"], dtype=np.int64), 1

    def _fit_mixture(self, prepared: dict, weight: np.ndarray, start: np.ndarray | None) -> None:
        if self.constant_stages_:
            self.mixture_ = {"classes": 1, "reason": "a stage has no regression (every applicant-week alike)"}
            return
        cells = prepared.get("cells")
        if cells is None:  # weight-independent: built once, reused by bootstrap refits
            cells = prepared["cells"] = self._stage_cells(prepared)
        J = len(self.stage_models_)
        group, G = self._share_groups(prepared)
        mix = {"group": group, "G": G}
        if start is not None:  # a bootstrap refit keeps the point fit's number of classes
            K = _classes_of(start, J, self._n_coef(), G)
            theta, info = self._lbfgs(start, cells, weight, K, mix)
        else:
            K, theta, info = self._select_classes(prepared, cells, weight, mix)
            if K == 1:
                self.mixture_ = info
                return
        self.n_classes_ = K
        self.mixture_theta_ = theta
        self.mixture_cells_, self.mixture_weight_, self.mixture_groups_ = cells, weight, mix  # for the delta-method errors
        self.mixture_coef_, self.class_shifts_, shares = _unpack(theta, J, K, G)
        self.class_shares_ = np.repeat(shares, len(self.channels_), axis=0) if G == 1 else shares
        self.mixture_ = {**info, "classes": K,
                         "class_shares": {c: self.class_shares_[i].tolist() for i, c in enumerate(self.channels_)},
                         "class_shares_by": self.class_shares_by or "none",
                         "class_logit_shifts": self.class_shifts_.tolist()}

    def _lbfgs(self, theta0: np.ndarray, cells: list[dict], weight: np.ndarray, K: int, mix: dict,
               label: str = "") -> tuple[np.ndarray, dict]:
        from scipy.optimize import minimize

        bar = progress(None, f"funnel: {K} latent speed classes{label} (at most {MIXTURE_MAX_ITER} iterations)",
                       "iteration", total=MIXTURE_MAX_ITER, show=bool(self.verbose))
        res = minimize(_mixture_objective, theta0, args=(cells, weight, K, self.C, mix), jac=True, method="L-BFGS-B",
                       options={"maxiter": MIXTURE_MAX_ITER, "ftol": MIXTURE_FTOL, "gtol": 1e-6},
                       callback=(lambda *_: bar.update(1)) if self.verbose else None)
        if self.verbose:
            bar.close()
        theta = _sorted_classes(res.x, len(cells), K, mix["G"])
        return theta, {"iterations": int(res.nit), "converged": bool(res.success), "message": str(res.message)}

    def _select_classes(self, prepared: dict, cells: list[dict], weight: np.ndarray,
                        mix: dict) -> tuple[int, np.ndarray, dict]:
        """The number of classes by held-out likelihood (module docstring): returns K, the
        parameters refitted on every applicant (K > 1) and the ``mixture_`` record."""
        J, G, n = len(cells), mix["G"], prepared["n"]
        held = np.random.default_rng(SELECTION_SEED).random(n) < SELECTION_HOLDOUT
        train, test = weight * ~held, weight * held
        independent = self._independent_theta()
        fits = {1: self._lbfgs(independent, cells, train, 1, mix, " on the training applicants")[0]}
        for K in range(2, self.latent_classes + 1):
            fits[K] = self._lbfgs(_with_classes(fits[1], J, K, G), cells, train, K, mix,
                                  " on the training applicants")[0]
        ll = {K: _applicant_loglik(theta, cells, K, mix) for K, theta in fits.items()}
        best, steps = 1, []
        m = float(test.sum())
        for K in range(2, self.latent_classes + 1):
            d = ll[K] - ll[best]
            gain = float(test @ d)
            mean = gain / m
            se = float(np.sqrt(test @ (d - mean) ** 2))  # of the sum: sqrt(m) x the per-applicant spread
            steps.append({"classes": K, "against": best, "held_out_gain": gain, "standard_error": se})
            if gain > SELECTION_Z * se:
                best = K
        info = {"held_out_applicants": int(held.sum()),
                "held_out_log_likelihood": {str(K): float(test @ v) for K, v in ll.items()},
                "comparisons": steps, "selection_z": SELECTION_Z}
        if best == 1:
            return 1, independent, {**info, "classes": 1, "reason": "the held-out likelihood prefers independent stages"}
        theta, fit = self._lbfgs(fits[best], cells, weight, best, mix)
        return best, theta, {**info, **fit, "reason": f"the held-out likelihood prefers {best} classes"}

    def _n_coef(self) -> int:
        return 1 + self.stage_models_[0].coef_.shape[1]

    def _stage_cells(self, prepared: dict) -> list[dict]:
        """Per stage: the distinct (week-in-stage bucket, profile) cells, their design with an
        intercept column, and the sparse applicant x (2 cells) counts [M1 M0] of applicant-weeks
        moving on (M1) and not (M0), with its transpose."""
        import scipy.sparse as sparse

        P = len(self.profiles_)
        px = self._profile_matrix(self.profiles_)
        n = prepared["n"]
        out = []
        for applicant, key in prepared["stage_rows"]:
            cell, moved = key // 2, (key % 2).astype(float)
            used, col = np.unique(cell, return_inverse=True)
            X = self._design(used // P, px[used % P])
            # [M1 M0]: applicant-weeks of each applicant in each cell, moving on | not
            m = sparse.csr_matrix((np.ones(len(col)), (applicant, col + len(used) * (1 - moved.astype(np.int64)))),
                                  shape=(n, 2 * len(used)))
            out.append({"X": np.hstack([np.ones((len(X), 1)), X]), "M": m, "MT": m.T.tocsr()})
        return out

    def _profile_channels(self) -> np.ndarray:
        """Per profile the index of its channel in ``channels_`` (its class shares' row)."""
        return pd.Categorical(self.profiles_["channel"].astype(str), categories=self.channels_).codes

    def _shares_of(self, channel: pd.Series) -> np.ndarray:
        """(n, K) class shares of rows with these channels (an unknown channel: the mean)."""
        code = pd.Categorical(channel.astype(str), categories=self.channels_).codes
        return np.where((code >= 0)[:, None], self.class_shares_[np.maximum(code, 0)], self.class_shares_.mean(axis=0))

    def _class_hazards(self, px: np.ndarray) -> np.ndarray:
        """(K, P, J, W) hazards per latent class, profile, stage transition and week in stage
        (K = 1 without a mixture); 0 beyond the weeks in stage the log shows (``supported``)."""
        W, P = self.max_weeks_in_stage, len(px)
        X = self._design(np.tile(np.arange(W), P), np.repeat(px, W, axis=0))  # rows (profile, week in stage)
        h = np.stack([self._row_hazards(j, X).reshape(P, W, -1) for j in range(len(self.stage_models_))], axis=1)
        return h.transpose(3, 0, 1, 2) * self.supported(W)[None, None]  # (P, J, W, K) -> (K, P, J, W)

    # ------------------------------------------------------------------ predictions
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of moving on this week for rows with columns ``stage`` (0-based
        transition index), ``tau`` (whole weeks in the stage), channel and covariates;
        returns (n, 2) [stay or drop, move on]. With latent classes: the class shares' mix,
        the hazard of someone whose history is not known (``calibration`` conditions on it)."""
        check_is_fitted(self, "stage_models_")
        out = np.zeros((len(X), 2))
        px = self._profile_matrix(X.reset_index(drop=True))
        stage = X["stage"].to_numpy()
        tau = X["tau"].to_numpy()
        shares = self._shares_of(X["channel"].reset_index(drop=True))
        for j in range(len(self.stage_models_)):
            m = stage == j
            if m.any():
                out[m, 1] = (self._row_hazards(j, self._design(tau[m], px[m])) * shares[m]).sum(axis=1)
        out[:, 0] = 1.0 - out[:, 1]
        return out

    def _row_hazards(self, j: int, X: np.ndarray) -> np.ndarray:
        """(n, K) stage-j hazard of design rows ``X`` for each latent class."""
        if self.n_classes_ == 1:
            return self.stage_models_[j].predict_proba(X)[:, 1:]
        coef = self.mixture_coef_[j]
        return expit((X @ coef[1:] + coef[0])[:, None] + self.class_shifts_[j][None, :])

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

    def _kernels_by_profile(self, at: dict | None = None) -> np.ndarray:
        """(P, K) probability of first being active k weeks after applying, per profile: per
        latent class the stages' first-advance distributions convolved (independent given
        the class), mixed with the class shares. ``at``: covariates set to a value for every
        profile ({"bonus": 0.0}: had nobody been offered a bonus)."""
        profiles = self.profiles_
        if at:
            profiles = profiles.copy()
            for col, value in at.items():
                profiles[col] = value
        return self._kernels_by_profile_from(self._profile_matrix(profiles))

    def _kernels_by_profile_from(self, px: np.ndarray) -> np.ndarray:
        h = self._class_hazards(px)
        shares = self.class_shares_[self._profile_channels()]  # (P, K): each profile its channel's
        return sum(shares[:, k, None] * _stage_convolution(_first_advance(hk)) for k, hk in enumerate(h))

    def yield_kernels(self, trim: float = 1e-6, by: str = "channel", min_applicants: int = 500,
                      at: dict | None = None) -> pd.DataFrame:
        """Probability of first being active k weeks after applying, averaged over the observed
        covariate mix: per channel (the instance's yield.csv format), or with ``by="depot"``
        per depot and channel, for groups with at least ``min_applicants`` applicants (where
        the data supports it; fit with ``depot_effects=True`` for hazards that differ by
        depot beyond the mix). ``at``: covariates held at a value ({"bonus": 0.0}: the
        channel's kernel without a sign-on bonus, which a bonus menu raises)."""
        check_is_fitted(self, "stage_models_")
        if by not in ("channel", "depot"):
            raise OptionError("by", "'channel' or 'depot'", by)
        kp = self._kernels_by_profile(at)
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

    def channel_summary(self, at: dict | None = None) -> pd.DataFrame:
        """Per channel: conversion, mean and median weeks to first block among converts
        (``at``: as in ``yield_kernels``)."""
        kp = self._kernels_by_profile(at)
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


#: Number of classes by held-out likelihood: the share of applicants held out, the seed of
#: the draw that holds them out (the same applicants for the same log), and how many
#: standard errors of the per-applicant difference a larger K must gain by.
SELECTION_HOLDOUT = 0.25
SELECTION_SEED = 20261207
SELECTION_Z = 2.0
#: The mixture fit stops when an L-BFGS step lowers the objective by less than this share
#: (1e-9: conversion within 6e-5 of a fit to 1e-11, 1.5% of its standard error, at 50,000
#: applicants, in 25% fewer iterations).
MIXTURE_FTOL = 1e-9
MIXTURE_MAX_ITER = 1000


def _first_advance(h: np.ndarray) -> np.ndarray:
    """h (..., W) weekly hazards -> probability of first advancing in week tau (..., W)."""
    survive = np.cumprod(1.0 - h, axis=-1)
    return h * np.concatenate([np.ones(h.shape[:-1] + (1,)), survive[..., :-1]], axis=-1)


def _stage_convolution(first: np.ndarray) -> np.ndarray:
    """(P, J, W) first-advance distributions -> (P, K) distribution of their sum (weeks)."""
    kernel = first[:, 0, :]
    for j in range(1, first.shape[1]):
        kernel = _convolve_rows(kernel, first[:, j, :])
    return kernel


def _unpack(theta: np.ndarray, J: int, K: int, G: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixture parameters -> coef (J, d) [intercept, coefficients], class logit shifts (J, K)
    with class 0's at 0, class shares (G, K) per share group (channel). Layout: coef, shifts
    of classes 1.., share logits of classes 1.. per group (class 0's logit 0)."""
    d = (len(theta) - (J + G) * (K - 1)) // J
    coef = theta[:J * d].reshape(J, d)
    shifts = np.zeros((J, K))
    shifts[:, 1:] = theta[J * d:J * d + J * (K - 1)].reshape(J, K - 1)
    rho = np.zeros((G, K))
    rho[:, 1:] = theta[J * d + J * (K - 1):].reshape(G, K - 1)
    return coef, shifts, np.exp(rho - np.logaddexp.reduce(rho, axis=1, keepdims=True))


def _classes_of(theta: np.ndarray, J: int, d: int, G: int = 1) -> int:
    return (len(theta) - J * d) // (J + G) + 1


def _with_classes(independent: np.ndarray, J: int, K: int, G: int = 1) -> np.ndarray:
    """Start of the mixture fit: the independent fit's logits +0.5 for class 0 and classes
    1.. a logit below each other (slower), equal shares in every group."""
    coef = independent.reshape(J, -1).copy()
    coef[:, 0] += 0.5
    shifts = -np.tile(np.arange(1, K, dtype=float), (J, 1))
    return np.concatenate([coef.ravel(), shifts.ravel(), np.zeros(G * (K - 1))])


def _sorted_classes(theta: np.ndarray, J: int, K: int, G: int = 1) -> np.ndarray:
    """The same mixture with classes ordered fastest first (by mean logit shift), class 0's
    shift folded into the intercepts."""
    if K == 1:
        return theta
    coef, shifts, shares = _unpack(theta, J, K, G)
    order = np.argsort(-shifts.mean(axis=0), kind="stable")
    shifts, shares = shifts[:, order], shares[:, order]
    coef = coef.copy()
    coef[:, 0] += shifts[:, 0]
    shifts = shifts - shifts[:, :1]
    rho = np.log(np.maximum(shares, 1e-300)) - np.log(np.maximum(shares[:, :1], 1e-300))
    return np.concatenate([coef.ravel(), shifts[:, 1:].ravel(), rho[:, 1:].ravel()])


def _class_loglik(theta: np.ndarray, cells: list[dict], K: int, mix: dict | None = None):
    """(K, n) log pi_c(a)k + log-likelihood of applicant a's rows in class k, the hazards per
    stage (cells, K) and the shares (G, K)."""
    J = len(cells)
    G = 1 if mix is None else mix["G"]
    coef, shifts, shares = _unpack(theta, J, K, G)
    n = cells[0]["M"].shape[0]
    ll = np.zeros((n, K))
    hazards = []
    for cell, c, a in zip(cells, coef, shifts, strict=True):
        eta = (cell["X"] @ c)[:, None] + a[None, :]
        ll += cell["M"] @ np.concatenate([-np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)])  # [M1 M0] @ [log h; log(1-h)]
        hazards.append(expit(eta))
    log_shares = np.log(np.maximum(shares, 1e-300))
    ll = ll.T + (log_shares[0][:, None] if G == 1 else log_shares[mix["group"]].T)  # (K, n): row-wise sums below are fast
    return ll, hazards, coef, shifts, shares


def _applicant_loglik(theta: np.ndarray, cells: list[dict], K: int, mix: dict | None = None) -> np.ndarray:
    """(n,) marginal log-likelihood of each applicant: log sum_k pi_c(a)k prod_rows h^y (1 - h)^(1 - y)."""
    ll = _class_loglik(theta, cells, K, mix)[0]
    top = np.max(ll, axis=0)
    return top + np.log(np.exp(ll - top).sum(axis=0))


def _mixture_objective(theta: np.ndarray, cells: list[dict], weight: np.ndarray, K: int, C: float,
                       mix: dict | None = None, penalty: bool = True) -> tuple[float, np.ndarray]:
    """Negative marginal log-likelihood of the applicants (weighted), plus the L2 penalty
    0.5 / C |coef|^2 of scikit-learn's LogisticRegression (intercepts and class terms not
    penalised), and its gradient.

        ll_ak = log pi_c(a)k + sum_j sum_rows(a, j) [y log h_jk + (1 - y) log(1 - h_jk)]
        L = sum_a w_a log sum_k exp(ll_ak)

    d L / d eta_cjk = sum_a w_a r_ak (M1[a, c] (1 - h_cjk) - M0[a, c] h_cjk), with r_ak the
    class posterior; the chain rule through eta = X coef_j + alpha_jk gives the rest;
    d L / d rho_gk = sum_(a in g) (w_a r_ak - w_a pi_gk) for the share logits of group g.
    ``cells``: ``FunnelModel._stage_cells``; ``mix``: {"group": (n,) share group of each
    applicant, "G": groups} (None: one group)."""
    ll, hazards, coef, shifts, shares = _class_loglik(theta, cells, K, mix)
    G = shares.shape[0]
    top = np.max(ll, axis=0)
    total = top + np.log(np.exp(ll - top).sum(axis=0))
    objective = -float(weight @ total)
    r = np.ascontiguousarray((np.exp(ll - total) * weight).T)  # (n, K) weighted class posteriors
    g_coef = np.zeros_like(coef)
    g_shift = np.zeros_like(shifts)
    for j, (cell, h) in enumerate(zip(cells, hazards, strict=True)):
        moved_not = cell["MT"] @ r  # (2 cells, K): [M1' r; M0' r]
        g = moved_not[:len(h)] * (1.0 - h) - moved_not[len(h):] * h  # (cells, K)
        g_coef[j] = cell["X"].T @ g.sum(axis=1)
        g_shift[j] = g.sum(axis=0)
    if G == 1:
        g_rho = (r.sum(axis=0) - weight.sum() * shares[0])[None, :]
    else:
        group = mix["group"]
        g_rho = (np.stack([np.bincount(group, weights=r[:, k], minlength=G) for k in range(K)], axis=1)
                 - np.bincount(group, weights=weight, minlength=G)[:, None] * shares)
    if penalty:
        objective += 0.5 / C * float((coef[:, 1:] ** 2).sum())
        g_coef[:, 1:] -= coef[:, 1:] / C
    grad = -np.concatenate([g_coef.ravel(), g_shift[:, 1:].ravel(), g_rho[:, 1:].ravel()])
    return objective, grad


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


#: z of a two-sided 95 % interval.
Z95 = 1.959963984540054
#: The conversion check compares shares within the lag by which the model's kernel has
#: reached this share of its conversion (the tail after it moves the share by < 0.1 %).
CHECK_MASS = 0.999


def wilson_interval(k, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial share k/n (elementwise; probability; n > 0)."""
    k, n = np.asarray(k, float), np.maximum(np.asarray(n, float), 1.0)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def conversion_check(model: FunnelModel, log: pd.DataFrame, observed_until, stages=DEFAULT_STAGES) -> pd.DataFrame:
    """Each channel's conversion by the fitted kernel against the raw share of the applicants
    the log follows long enough to see it (issue #30): with L the lag by which the channel's
    kernel holds CHECK_MASS of its conversion, the applicants observed for at least L weeks
    after applying, the share of them with a first block within L weeks (and its 95 % Wilson
    interval), against the kernel's cumulative yield to lag L-1. ``ok`` is False when the
    model's share lies outside the interval: the fit misses that channel's conversion."""
    stages = list(stages)
    kernels = model.yield_kernels()
    applied = pd.to_datetime(log[stages[0]], errors="coerce").to_numpy("datetime64[D]")
    first = pd.to_datetime(log[stages[-1]], errors="coerce").to_numpy("datetime64[D]")
    ends = observation_ends(log, np.datetime64(pd.Timestamp(observed_until).date(), "D"))
    followed = (ends - applied).astype("timedelta64[D]").astype(float)  # days
    lag = np.where(np.isnat(first), np.inf, (first - applied).astype("timedelta64[D]").astype(float) // 7)
    rows = []
    for channel, g in kernels.groupby("channel", sort=True):
        k = g.sort_values("lag")["probability"].to_numpy(float)
        cum = np.cumsum(k)
        L = int(np.argmax(cum >= CHECK_MASS * cum[-1])) + 1 if cum[-1] > 0 else len(k)
        mine = (log["channel"] == channel).to_numpy() & (followed >= 7 * L)
        n, conv = int(mine.sum()), int((mine & (lag < L)).sum())
        low, high = wilson_interval(conv, n)
        model_share = float(cum[L - 1]) if len(cum) else 0.0
        rows.append({"channel": channel, "weeks": L, "applicants_followed": n, "converted": conv,
                     "raw_share": conv / n if n else np.nan, "low": float(low) if n else np.nan,
                     "high": float(high) if n else np.nan, "model_share": model_share,
                     "ok": bool(n == 0 or low <= model_share <= high)})
    return pd.DataFrame(rows)


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

    With latent classes the parameters' covariance is the inverse of the marginal
    log-likelihood's Hessian and the gradient of the conversion is taken numerically
    (``_mixture_conversion_standard_errors``); the mix term is the same.
    """
    check_is_fitted(model, "stage_models_")
    if model.n_classes_ > 1:
        return _mixture_conversion_standard_errors(model)
    px = model._profile_matrix(model.profiles_)
    W = model.max_weeks_in_stage
    P = len(px)
    X = model._design(np.tile(np.arange(W), P), np.repeat(px, W, axis=0))  # the rows of FunnelModel._class_hazards
    h = model._class_hazards(px)[0]  # (P, J, W)
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


def _mixture_conversion_standard_errors(model: FunnelModel, step: float = 1e-5) -> pd.Series:
    """Delta-method standard errors of a latent-class fit: covariance = inverse Hessian of the
    penalised negative marginal log-likelihood at the fit (central differences of its analytic
    gradient, ``step`` in parameter units), conversion gradient by central differences."""
    J, K = len(model.stage_models_), model.n_classes_
    theta = model.mixture_theta_
    cells, weight, mix = model.mixture_cells_, model.mixture_weight_, model.mixture_groups_
    d = len(theta)
    eye = np.eye(d) * step
    hessian = np.stack([(_mixture_objective(theta + e, cells, weight, K, model.C, mix)[1]
                         - _mixture_objective(theta - e, cells, weight, K, model.C, mix)[1]) / (2 * step) for e in eye])
    cov = np.linalg.pinv(0.5 * (hessian + hessian.T), hermitian=True)
    px = model._profile_matrix(model.profiles_)
    mixes = {c: model._channel_weights(c) for c in model.channels_}

    def conversions(t: np.ndarray) -> np.ndarray:
        probe = copy.copy(model)  # the fitted model with the mixture's parameters replaced
        probe.mixture_coef_, probe.class_shifts_, shares = _unpack(t, J, K, mix["G"])
        probe.class_shares_ = np.repeat(shares, len(model.channels_), axis=0) if mix["G"] == 1 else shares
        conv_p = probe._kernels_by_profile_from(px).sum(axis=1)
        return np.array([mixes[c] @ conv_p for c in model.channels_])

    grad = np.stack([(conversions(theta + e) - conversions(theta - e)) / (2 * step) for e in eye], axis=1)
    conv_p = model._kernels_by_profile().sum(axis=1)
    out = {}
    for i, channel in enumerate(model.channels_):
        w = mixes[channel]
        n_c = float(model.profile_counts_.xs(channel, level="channel").sum())
        out[channel] = np.sqrt(float(grad[i] @ cov @ grad[i]) + float(w @ (conv_p - w @ conv_p) ** 2) / n_c)
    return pd.Series(out, name="conversion_se_delta").rename_axis("channel")


def _refits(model: FunnelModel, log: pd.DataFrame, n: int, seed: int, observed_until, show_progress: bool):
    """The bootstrap's ``n`` refits of ``model`` on ``log`` (a generator; see ``bootstrap``)."""
    from threadpoolctl import threadpool_limits

    check_is_fitted(model, "stage_models_")
    rng = np.random.default_rng(seed)
    prepared = clone(model)._prepare(log, model.observed_until_ if observed_until is None else observed_until)
    # latent classes: every refit keeps the point fit's number of classes and starts from it
    start = getattr(model, "mixture_theta_", None) if model.n_classes_ > 1 else None
    refit = clone(model).set_params(latent_classes=model.n_classes_, verbose=False)
    # the refits multiply small matrices: more BLAS threads only contend (badly on a busy machine)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in progress(range(n), "funnel bootstrap", "refit", show=show_progress):
            w = rng.poisson(1.0, size=prepared["n"]).astype(float)
            yield clone(refit)._fit_prepared(prepared, w, start)


def _t_quantile(level: float, n: int) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 + level / 2, df=n - 1))


def _channel_intervals(point: pd.DataFrame, draws: list[pd.DataFrame], t: float) -> pd.DataFrame:
    point = point.set_index("channel")
    sd = pd.concat(draws).groupby("channel")[["conversion", "mean_weeks_to_first_block"]].std(ddof=1)
    out = pd.DataFrame({
        "conversion_low": point["conversion"] - t * sd["conversion"],
        "conversion_high": point["conversion"] + t * sd["conversion"],
        "mean_weeks_low": point["mean_weeks_to_first_block"] - t * sd["mean_weeks_to_first_block"],
        "mean_weeks_high": point["mean_weeks_to_first_block"] + t * sd["mean_weeks_to_first_block"],
        "conversion_se": sd["conversion"],
        "mean_weeks_se": sd["mean_weeks_to_first_block"],
    })
    return out.rename_axis("channel").reset_index()


def bootstrap(model: FunnelModel, log: pd.DataFrame, n: int = 50, seed: int = 0, observed_until=None,
              level: float = 0.95, show_progress: bool = False, at: dict | None = None) -> pd.DataFrame:
    """Bootstrap confidence intervals of each channel's conversion and mean weeks to first block.

    Resampling: applicants (clusters of applicant-weeks, not single rows) with Poisson(1)
    weights, so an applicant's weeks in every stage and their place in the covariate mix move
    together; the model is refitted with the same hyperparameters and observation window
    (``observed_until`` defaults to the model's), and with the point fit's number of latent
    classes, starting from its parameters.

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
    interval) and conversion_se, mean_weeks_se (s), of ``channel_summary(at)``."""
    draws = [m.channel_summary(at) for m in _refits(model, log, n, seed, observed_until, show_progress)]
    return _channel_intervals(model.channel_summary(at), draws, _t_quantile(level, n))


#: A bonus level gets a response row when at least this many applicants of the channel were
#: offered it; at most RESPONSE_LEVELS levels per channel (quantiles of those offered, when more).
RESPONSE_MIN_APPLICANTS = 100
RESPONSE_LEVELS = 8


def bonus_levels(log: pd.DataFrame, column: str = BONUS_COLUMN,
                 min_applicants: int = RESPONSE_MIN_APPLICANTS) -> dict[str, list[float]]:
    """{channel: [bonus levels > 0 offered to at least ``min_applicants`` of its applicants]}
    (currency per converted driver); channels never offered a bonus are left out: a response
    is not extrapolated to a channel or a level the log never tried."""
    if column not in log.columns:
        return {}
    out = {}
    for channel, values in log.groupby(log["channel"].astype(str))[column]:
        counts = pd.to_numeric(values, errors="coerce").value_counts()
        levels = sorted(float(v) for v, k in counts.items() if v > 0 and k >= min_applicants)
        if len(levels) > RESPONSE_LEVELS:
            offered = pd.to_numeric(values, errors="coerce")
            offered = np.sort(offered[offered > 0].to_numpy(float))
            picks = np.quantile(offered, np.linspace(0, 1, RESPONSE_LEVELS), method="nearest")
            levels = sorted({float(v) for v in picks})
        if levels:
            out[str(channel)] = levels
    return out


def bonus_response(model: FunnelModel, levels: dict[str, list[float]], column: str = BONUS_COLUMN) -> pd.DataFrame:
    """The conversion response to a sign-on bonus, from the funnel's fitted covariate effect.

    Per channel and level b (currency per converted driver): ``conversion`` had every applicant
    of the channel been offered b (the channel's observed mix of the other covariates, the
    fitted hazards of every stage with the bonus covariate set to b), ``conversion_without``
    the same with no bonus, and ``conversion_uplift`` = conversion / conversion_without - 1
    (share): the instance's bonuses.csv conversion_uplift at bonus_per_driver = b. The bonus
    enters each stage's logit linearly (its coefficient per stage), so the response in b is
    a sigmoid, concave beyond its inflection; between levels the LP takes the segments of the
    menu's hull. ``mean_weeks_to_first_block`` at b says whether the bonus also speeds
    converts up (the menu keeps the channel's timing; docs/estimation.md)."""
    check_is_fitted(model, "stage_models_")
    if column not in model.numeric_:
        raise OptionError("bonus column", f"a numeric covariate of the fit ({', '.join(model.numeric_) or 'none'})",
                          column)
    values = sorted({0.0, *(float(b) for bs in levels.values() for b in bs)})
    kernels = {b: model._kernels_by_profile({column: b}) for b in values}
    rows = []
    for channel, bs in levels.items():
        if channel not in model.channels_:
            continue
        w = model._channel_weights(channel)
        k0 = w @ kernels[0.0]
        for b in bs:
            k = w @ kernels[float(b)]
            conv = float(k.sum())
            rows.append({"channel": channel, "bonus_per_driver": float(b), "conversion": conv,
                         "conversion_without": float(k0.sum()), "conversion_uplift": conv / float(k0.sum()) - 1.0,
                         "mean_weeks_to_first_block": float((np.arange(len(k)) * k).sum() / conv) if conv > 0
                         else float("nan")})
    return pd.DataFrame(rows, columns=["channel", "bonus_per_driver", "conversion", "conversion_without",
                                       "conversion_uplift", "mean_weeks_to_first_block"])


def bootstrap_with_response(model: FunnelModel, log: pd.DataFrame, levels: dict[str, list[float]], n: int = 50,
                            seed: int = 0, observed_until=None, level: float = 0.95, show_progress: bool = False,
                            column: str = BONUS_COLUMN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``bootstrap``'s channel intervals without a bonus (``at={column: 0}``: the channel's
    own conversion, which the menu raises) and, from the same refits, the bonus response
    (``bonus_response``) with its interval: uplift_low, uplift_high (estimate +- t * s, as in
    ``bootstrap``) and uplift_se (s) per channel and level."""
    summaries, responses = [], []
    at = {column: 0.0}
    for m in _refits(model, log, n, seed, observed_until, show_progress):
        summaries.append(m.channel_summary(at))
        responses.append(bonus_response(m, levels, column))
    t = _t_quantile(level, n)
    point = bonus_response(model, levels, column)
    key = ["channel", "bonus_per_driver"]
    sd = pd.concat(responses).groupby(key)["conversion_uplift"].std(ddof=1).rename("uplift_se").reset_index()
    response = point.merge(sd, on=key, how="left")
    response.insert(response.columns.get_loc("conversion_uplift") + 1, "uplift_low",
                    response["conversion_uplift"] - t * response["uplift_se"])
    response.insert(response.columns.get_loc("uplift_low") + 1, "uplift_high",
                    response["conversion_uplift"] + t * response["uplift_se"])
    return _channel_intervals(model.channel_summary(at), summaries, t), response


def calibration(model: FunnelModel, log: pd.DataFrame, observed_until=None, bins: int = 10) -> tuple[float, pd.DataFrame]:
    """Brier score and reliability table of the weekly move-on probabilities on ``log``
    (typically held-back applicants): predicted against observed rates by probability bin."""
    check_is_fitted(model, "stage_models_")
    stages = list(model.stages)
    observed = model.observed_until_ if observed_until is None else np.datetime64(pd.Timestamp(observed_until).date(), "D")
    dates = {s: pd.to_datetime(log[s], errors="coerce").to_numpy("datetime64[D]") for s in stages}
    px = model._profile_matrix(log.reset_index(drop=True))
    ends = observation_ends(log.reset_index(drop=True), observed)
    preds, outcomes = [], []
    # latent classes: each row is predicted with the class posterior given the applicant's
    # earlier rows (all earlier stages, and earlier weeks in this one): one step ahead
    history = np.zeros((len(log), model.n_classes_))  # log-likelihood of each applicant's rows so far, per class
    log_shares = np.log(np.maximum(model._shares_of(log["channel"].reset_index(drop=True)), 1e-300))  # (n, K)
    for j in range(len(model.stage_models_)):
        entered, advanced = dates[stages[j]], dates[stages[j + 1]]
        ok = ~np.isnat(entered) & (entered <= ends)
        adv = np.where(~np.isnat(advanced) & (advanced <= ends), advanced, np.datetime64("NaT"))
        rows = np.flatnonzero(ok)
        idx, tau, moved = _expand_weeks(entered[rows], adv[rows], ends[rows], model.max_weeks_in_stage)
        applicant = rows[idx]
        if len(applicant) == 0:  # nobody held back reached this stage: nothing to score here
            continue
        h = model._row_hazards(j, model._design(tau, px[applicant]))  # (n_rows, K)
        h_safe = np.clip(h, 1e-300, 1.0 - 1e-16)
        row_ll = np.where(moved[:, None] == 1, np.log(h_safe), np.log1p(-h_safe))
        before = np.cumsum(row_ll, axis=0) - row_ll  # rows of one applicant are consecutive, in week order
        block_start = np.r_[0, np.flatnonzero(np.diff(applicant)) + 1]
        before -= np.repeat(before[block_start], np.diff(np.r_[block_start, len(applicant)]), axis=0)
        prior = log_shares[applicant] + history[applicant] + before
        post = np.exp(prior - prior.max(axis=1, keepdims=True))
        preds.append((post * h).sum(axis=1) / post.sum(axis=1))
        outcomes.append(moved)
        np.add.at(history, applicant, row_ll)
    if not preds:  # no applicant-week to score: no Brier score (null in the summary), no table
        return float("nan"), pd.DataFrame(columns=["bin", "rows", "mean_predicted", "observed_rate"])
    p = np.concatenate(preds)
    y = np.concatenate(outcomes).astype(float)
    brier = float(np.mean((p - y) ** 2))
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    table = pd.DataFrame({"bin": which, "predicted": p, "observed": y}).groupby("bin").agg(
        rows=("observed", "size"), mean_predicted=("predicted", "mean"), observed_rate=("observed", "mean")).reset_index()
    return brier, table
