"""An LSTM quantile forecaster (MQ-RNN style), an optional extra: ``pip install optplan[deep]``.

One network for every depot (global), trained on every past origin of the history:

    s_d     = mean of the depot's last 52 weeks before the origin        (blocks/week, depot scale)
    z[t, d] = log((y[t, d] + eps s_d) / s_d),  eps = models.EPS          (unitless)

Encoder: an LSTM (``hidden`` units) reads the last ``context`` weeks of z with the week of
year as (sin, cos). Decoder, shared over horizons h = 1..H: a small MLP on the encoder's last
state, the same week last year z[n - 1 + h - 52] and the target week's (sin, cos) gives the
quantiles ``LEVELS`` of z[n - 1 + h]; the loss is the mean pinball loss over levels,
horizons and depots (direct multi-horizon, as in MQ-RNN, Wen et al. 2017).

Calibration (only data before the origin; the P50 is not moved): the network is trained on
every origin but the last ``CAL_ORIGINS``; on those held-out origins' rows,

    delta_q = q-quantile of (z - prediction_q)   over the rows' horizons and depots

and the forecast's quantile q is prediction_q + delta_q (split-conformal; uncalibrated, the
P10-P90 band covered 57 % on the Walmart backtest: trained quantiles fit the training
origins too well). Quantiles are then sorted and turned back into blocks/week
(y = s (exp z) - eps s, at least 0).

Deterministic for a seed on the CPU (torch.manual_seed, deterministic algorithms, one
thread). The dependence template for scenarios is the seasonal-naive one (models.py).
Without torch, ``available()`` says why and ``rnn_quantiles`` raises OptionError.
"""

from __future__ import annotations

import numpy as np

from optplan.errors import OptionError
from optplan.forecast.calendar import WEEKS_PER_YEAR
from optplan.forecast.history import History
from optplan.forecast.models import EPS, LEVELS, QuantileForecast, future_weeks, seasonal_naive_template

#: Weeks the encoder reads; hidden units; training epochs; Adam learning rate; batch size.
CONTEXT = 52
HIDDEN = 32
EPOCHS = 80
LEARNING_RATE = 3e-3
BATCH = 128
#: Training origins the model needs at least (beyond the context and a year for the decoder).
MIN_ORIGINS = 13
#: The last origins held out to calibrate the quantiles (split conformal).
CAL_ORIGINS = 8


def available() -> str | None:
    """None when torch can be imported, else why not (and how to install it)."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return f"the rnn model needs PyTorch: pip install 'optplan[deep]' ({exc})"
    return None


def min_history_weeks(horizon: int) -> int:
    """Weeks of history the rnn model needs for a ``horizon``-week forecast."""
    return max(CONTEXT, WEEKS_PER_YEAR) + horizon + MIN_ORIGINS + CAL_ORIGINS


def _week_features(weeks) -> np.ndarray:
    """(n, 2) sin and cos of the ISO week of year."""
    woy = np.array([w.isocalendar()[1] for w in weeks], float)
    angle = 2 * np.pi * (woy - 1) / 52.0
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


def rnn_quantiles(history: History, horizon: int, seed: int = 0, epochs: int = EPOCHS, progress=None):
    """Quantile forecasts (models.QuantileForecast) of the LSTM for the next ``horizon`` weeks."""
    why = available()
    if why:
        raise OptionError("--model", "global, ets or seasonal_naive (or install the deep extra)", f"rnn: {why}")
    import torch

    if history.n_weeks < min_history_weeks(horizon):
        raise OptionError("--horizon", f"a history of at least {min_history_weeks(horizon)} weeks for the rnn model",
                          f"{history.n_weeks} weeks")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Y = np.asarray(history.blocks, float)  # (T, D)
        T, D = Y.shape
        H, C = horizon, CONTEXT
        weeks = list(history.week_start) + list(future_weeks(history, H))
        feat = _week_features(weeks)  # (T + H, 2)
        last = Y[-WEEKS_PER_YEAR:]
        scale = np.nanmean(np.where(np.isfinite(last), last, np.nan), axis=0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        z = np.log((Y + EPS * scale) / scale)  # NaN before a depot's first week

        def sample(n, d):
            """Inputs of origin n (weeks 0..n-1 known) at depot d: context (C, 3), decoder (H, 3)."""
            ctx = np.column_stack([z[n - C:n, d], feat[n - C:n]])
            ly = z[n - 1 + np.arange(1, H + 1) - WEEKS_PER_YEAR, d]
            dec = np.column_stack([ly, feat[n:n + H]])
            return ctx, dec

        X_ctx, X_dec, Y_t, origin = [], [], [], []
        for n in range(max(C, WEEKS_PER_YEAR), T - H + 1):
            for d in range(D):
                ctx, dec = sample(n, d)
                target = z[n:n + H, d]
                if np.isfinite(ctx).all() and np.isfinite(dec).all() and np.isfinite(target).all():
                    X_ctx.append(ctx)
                    X_dec.append(dec)
                    Y_t.append(target)
                    origin.append(n)
        if len(Y_t) < MIN_ORIGINS:
            raise OptionError("history", "enough complete weeks to train the rnn model", f"{len(Y_t)} samples")
        origin = np.array(origin)
        held = origin > origin.max() - CAL_ORIGINS  # the last CAL_ORIGINS origins calibrate
        if held.all() or not held.any():
            held = np.zeros(len(origin), dtype=bool)
        tc_all = torch.tensor(np.array(X_ctx), dtype=torch.float32)
        td_all = torch.tensor(np.array(X_dec), dtype=torch.float32)
        ty_all = torch.tensor(np.array(Y_t), dtype=torch.float32)
        keep = torch.tensor(np.flatnonzero(~held))
        tc, td, ty = tc_all[keep], td_all[keep], ty_all[keep]
        levels = torch.tensor(LEVELS, dtype=torch.float32)
        net = _Net(len(LEVELS))
        opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            order = torch.randperm(len(ty), generator=gen)
            for i in range(0, len(ty), BATCH):
                b = order[i:i + BATCH]
                pred = net(tc[b], td[b])  # (B, H, Q)
                err = ty[b][..., None] - pred
                loss = torch.maximum(levels * err, (levels - 1) * err).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if progress and (epoch + 1) % 20 == 0:
                progress(f"rnn: epoch {epoch + 1}/{epochs}, pinball loss {loss.item():.4f}")
        delta = np.zeros(len(LEVELS))
        if held.any():
            cal = torch.tensor(np.flatnonzero(held))
            with torch.no_grad():
                resid = (ty_all[cal][..., None] - net(tc_all[cal], td_all[cal])).numpy().reshape(-1, len(LEVELS))
            delta = np.array([np.quantile(resid[:, j], q) if q != 0.5 else 0.0 for j, q in enumerate(LEVELS)])
        ctx, dec = zip(*(sample(T, d) for d in range(D)), strict=True)
        ctx = np.nan_to_num(np.array(ctx))  # a depot younger than the context reads zeros
        dec = np.nan_to_num(np.array(dec))
        with torch.no_grad():
            out = net(torch.tensor(ctx, dtype=torch.float32), torch.tensor(dec, dtype=torch.float32)).numpy()
        out = np.sort(out.astype(float) + delta, axis=-1)  # (D, H, Q) calibrated, no crossing
        values = np.maximum(scale[:, None, None] * np.exp(out) - EPS * scale[:, None, None], 0.0)
        return QuantileForecast("rnn", tuple(LEVELS), np.transpose(values, (1, 0, 2)), list(history.depots),
                                future_weeks(history, H), seasonal_naive_template(history, H),
                                {"samples": len(Y_t), "calibration_samples": int(held.sum()), "epochs": epochs,
                                 "seed": seed, "hidden": HIDDEN, "context_weeks": C,
                                 "calibration_shift": [float(v) for v in delta]})
    finally:
        torch.set_num_threads(threads)


def _Net(n_levels: int):
    """The encoder-decoder (built lazily so that importing this module needs no torch)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, HIDDEN, batch_first=True)
            self.head = nn.Sequential(nn.Linear(HIDDEN + 3, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_levels))

        def forward(self, ctx, dec):
            _, (h, _) = self.lstm(ctx)  # h: (1, B, HIDDEN)
            state = h[-1][:, None, :].expand(-1, dec.shape[1], -1)
            # quantiles as the same week last year plus a learnt adjustment
            return dec[..., :1] + self.head(torch.cat([state, dec], dim=-1))

    return Net()
