"""Realization: the DP's arrival stream per channel becomes applicants per week."""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.drivers import arrivals_matrix, cohort_arrivals

#: Projected-gradient iterations of the deconvolution (T <= a few hundred weeks).
DECONV_ITERATIONS = 400


#: The deconvolution stops early when an iteration moves no applicant count by more than this
#: share of the largest (checked every DECONV_CHECK iterations).
DECONV_RTOL = 1e-9
DECONV_CHECK = 20


class Realizer:
    """Depot d's deconvolution operators, built once: per channel the convolution matrix
    Y[t, tau] = y[c, t - tau] (arrivals in week t per applicant of week tau, applying weeks
    without a variable zeroed), the applicant bounds and the projected-gradient step 1/||Y||^2."""

    def __init__(self, data: ModelData, d: int):
        D, C, T, _ = data.shape
        y = data.yield_kernel
        mask = data.recruit_mask()[d]
        self.T, self.C, self.y = T, C, y
        self.Y, self.ub, self.step, self.modal = [], [], [], []
        for c in range(C):
            Y = arrivals_matrix(data, c) * mask[c][None, :]  # the drivers kernel's map, weeks without a variable zeroed
            self.Y.append(Y)
            self.ub.append(np.where(mask[c], float(data.applicant_cap[d, c]), 0.0))
            self.step.append(1.0 / max(np.linalg.norm(Y, 2) ** 2, 1e-12))
            self.modal.append(int(np.argmax(y[c])))

    def __call__(self, arrivals: np.ndarray) -> np.ndarray:
        """Applicants (C, T) whose expected arrivals match ``arrivals`` (C, T) as closely as the
        kernel allows: bounded non-negative least squares by projected gradient, started from
        the shift by the modal lag. Applying weeks without a variable stay 0."""
        out = np.zeros((self.C, self.T))
        for c in range(self.C):
            target = arrivals[c]
            if target.sum() <= 0:
                continue
            Y, ub, step, modal = self.Y[c], self.ub[c], self.step[c], self.modal[c]
            x = np.zeros(self.T)
            x[: self.T - modal] = target[modal:] / self.y[c].sum()
            x = np.clip(x, 0.0, ub)
            YtY, Ytb = step * (Y.T @ Y), step * (Y.T @ target)
            for i in range(DECONV_ITERATIONS):
                new = np.clip(x - (YtY @ x - Ytb), 0.0, ub)
                if i % DECONV_CHECK == 0 and np.abs(new - x).max() <= DECONV_RTOL * max(1.0, float(np.abs(new).max())):
                    x = new
                    break
                x = new
            out[c] = x
        return out


def trim_onboarding(data: ModelData, d: int, x: np.ndarray) -> np.ndarray:
    """Lower the latest cohorts until recruited arrivals + pipeline <= onboarding cap, week by
    week (applicants x (C, T) of depot d). Week t's arrivals are the cohorts' new drivers at
    their lags (drivers.cohort_arrivals: the kernel of recruited_arrivals), so the excess is
    drivers.onboarding_excess's n[d,t] + pipeline[d,t] - cap."""
    cap = float(data.onboarding_cap[d])
    if not np.isfinite(cap):
        return x
    L = data.yield_kernel.shape[1]
    x = x.copy()
    for t in range(data.n_weeks):
        ks = np.arange(0, min(t, L - 1) + 1)
        contrib = cohort_arrivals(data, x[:, t - ks].T)[np.arange(len(ks)), ks]  # cohort t-k's drivers in week t
        excess = float(contrib.sum()) + data.pipeline[d, t] - cap
        for k, tot in zip(ks, contrib, strict=True):  # latest cohort first (k = 0, 1, ...)
            if excess <= 1e-12:
                break
            if tot <= 0:
                continue
            cut = min(1.0, excess / tot)
            x[:, t - k] *= 1.0 - cut
            excess -= cut * tot
    return x
    y = data.yield_kernel
    T = data.n_weeks
    x = x.copy()
    for t in range(T):
        ks = np.arange(0, min(t, y.shape[1] - 1) + 1)
        excess = float((y[:, ks] * x[:, t - ks]).sum()) + data.pipeline[d, t] - cap
        for k in ks:  # latest cohort first (k = 0, 1, ...)
            if excess <= 1e-12:
                break
            contrib = y[:, k] * x[:, t - k]
            tot = contrib.sum()
            if tot <= 0:
                continue
            cut = min(1.0, excess / tot)
            x[:, t - k] *= 1.0 - cut
            excess -= cut * tot
    return x



