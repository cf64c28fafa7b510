"""Realization: the DP's arrival stream per channel becomes applicants per week."""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData

#: Projected-gradient iterations of the deconvolution (T <= a few hundred weeks).
DECONV_ITERATIONS = 400


def realize(data: ModelData, d: int, arrivals: np.ndarray) -> np.ndarray:
    """Applicants (C, T) whose expected arrivals match ``arrivals`` (C, T) as closely as the
    kernel allows: bounded non-negative least squares by projected gradient, started from
    the shift by the modal lag. Applying weeks without a variable stay 0."""
    D, C, T, _ = data.shape
    y = data.yield_kernel
    mask = data.recruit_mask()[d]
    out = np.zeros((C, T))
    for c in range(C):
        target = arrivals[c]
        if target.sum() <= 0:
            continue
        k = np.arange(y.shape[1])
        # Y[t, tau] = y[c, t - tau]: arrivals in week t per applicant of week tau
        lag = np.arange(T)[:, None] - np.arange(T)[None, :]
        Y = np.where((lag >= 0) & (lag < len(k)), y[c, np.clip(lag, 0, len(k) - 1)], 0.0) * mask[c][None, :]
        cap = float(data.applicant_cap[d, c])
        ub = np.where(mask[c], cap, 0.0)
        modal = int(np.argmax(y[c]))
        x = np.zeros(T)
        x[: T - modal] = target[modal:] / y[c].sum()
        x = np.clip(x, 0.0, ub)
        step = 1.0 / max(np.linalg.norm(Y, 2) ** 2, 1e-12)
        for _ in range(DECONV_ITERATIONS):
            x = np.clip(x - step * (Y.T @ (Y @ x - target)), 0.0, ub)
        out[c] = x
    return out


def trim_onboarding(data: ModelData, d: int, x: np.ndarray) -> np.ndarray:
    """Lower the latest cohorts until recruited arrivals + pipeline <= onboarding cap."""
    cap = float(data.onboarding_cap[d])
    if not np.isfinite(cap):
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



