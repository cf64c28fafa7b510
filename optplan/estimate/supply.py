"""Driver supply by week of year and by tenure, from an activity log (issue #15 part 4).

Input: the activity log of retention.py (driver_id, depot, week = Monday, blocks; a week
without a row is a week with 0 blocks). A driver is active from the first worked week to
the last (churned: the last lies ``gap`` or more weeks before the log's end) or to the end
of the log (not churned), as in retention.py.

Per depot and calendar week w (blocks, active driver-weeks):

    B_dw = blocks worked in week w,  A_dw = drivers active in week w
    b_d  = sum_w B_dw / sum_w A_dw                        blocks per active driver-week

The last ``gap`` weeks are left out: who has churned there is not known yet, so their active
counts run high (a 3 %/week churn overstates the last 4 weeks' drivers by up to ~12 %).

Seasonal index per week of year k (ISO week 1..53, pooled over the log's years), shrunk
toward 1 by ``shrink`` driver-weeks of prior weight:

    s_dk = (A_dk (B_dk / A_dk) / b_d + shrink) / (A_dk + shrink)          unitless

so a week of year the log does not cover gets 1 (the depot's constant). The instance's
supply is then b[d,t] = blocks_per_driver[d] x s_{d, week of year of week t}
(``supply_table``; blocks_per_driver from retention.py, which also counts the unseen weeks
after a churned driver's last row: the index is a ratio, so that correction cancels).

Tenure index per bucket j of retention.TENURE_EDGES (tenure = weeks since the first worked
week): B_dj over b_d sum s_dk of its driver-weeks (the blocks the season alone would give
them: else a cohort that starts before the peak would look productive), the same shrinkage. Reported, not fed to the instance: the LP's
driver stock has no tenure, so the pool's mix of new and established drivers is not known to
it (docs/estimation.md says how to read it).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from optplan.estimate.retention import TENURE_EDGES, tenure_bucket

#: Prior weight (active driver-weeks) pulling a week-of-year or tenure index toward 1.
SHRINK_DRIVER_WEEKS = 20.0


def supply_indices(log: pd.DataFrame, gap: int = 4, observed_until=None,
                   shrink: float = SHRINK_DRIVER_WEEKS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(season, tenure): per depot and ISO week of year, and per depot and tenure bucket, the
    index of blocks per active driver-week against the depot's average over the log
    (unitless), with the blocks and active driver-weeks behind it; the season table also has
    that week's blocks per active driver-week, b_d s_dk (module docstring)."""
    week = pd.to_datetime(log["week"]).to_numpy("datetime64[D]")
    origin = week.min()
    w = ((week - origin).astype(np.int64) // 7).astype(int)
    end = int(w.max()) if observed_until is None else int(
        (np.datetime64(pd.Timestamp(observed_until).date(), "D") - origin).astype(np.int64) // 7)
    frame = pd.DataFrame({"driver_id": log["driver_id"].astype(str), "depot": log["depot"].astype(str), "w": w,
                          "blocks": log["blocks"].to_numpy(float)})
    drivers = frame.groupby("driver_id", sort=True).agg(depot=("depot", "first"), first=("w", "min"), last=("w", "max"))
    known = end - gap  # weeks after this are left out (churn not known yet)
    churned = drivers["last"].to_numpy() <= known
    # a span's first week (and a churned driver's last) is a worked week by definition, so its
    # blocks are conditioned on working (a low-season week would look busier): interior only
    first = drivers["first"].to_numpy() + 1
    stop = np.minimum(np.where(churned, drivers["last"].to_numpy() - 1, end), known)  # last counted active week
    depots = sorted(drivers["depot"].unique())
    d_code = pd.Index(depots).get_indexer(drivers["depot"])
    W = max(known + 1, 1)
    # active drivers per (depot, week) by a difference array over each driver's span
    active = np.zeros((len(depots), W + 1))
    ok = stop >= first
    np.add.at(active, (d_code[ok], first[ok]), 1.0)
    np.add.at(active, (d_code[ok], stop[ok] + 1), -1.0)
    active = np.cumsum(active, axis=1)[:, :W]
    span_of = pd.Series(np.arange(len(drivers)), index=drivers.index)
    at = span_of.reindex(frame["driver_id"]).to_numpy()
    rows = frame[(frame["w"].to_numpy() >= first[at]) & (frame["w"].to_numpy() <= stop[at])]
    blocks = np.zeros((len(depots), W))
    np.add.at(blocks, (pd.Index(depots).get_indexer(rows["depot"]), rows["w"].to_numpy()), rows["blocks"].to_numpy())
    level = blocks.sum(axis=1) / np.maximum(active.sum(axis=1), 1e-12)  # (D,) b_d
    iso = np.array([(origin + np.timedelta64(7 * i, "D")).astype(dt.date).isocalendar()[1] for i in range(W)])
    season = []
    for i, d in enumerate(depots):
        for k in range(1, 54):
            at = iso == k
            A, B = float(active[i, at].sum()), float(blocks[i, at].sum())
            ratio = B / A / level[i] if A > 0 and level[i] > 0 else 1.0
            index = (A * ratio + shrink) / (A + shrink)
            season.append({"depot": d, "week_of_year": k, "index": index, "blocks_per_driver": level[i] * index,
                           "blocks": B, "driver_weeks": A})
    # tenure: each driver-week of a span, its blocks from the rows
    span = np.maximum(stop - first + 1, 0)
    who = np.repeat(np.arange(len(drivers)), span)
    offset = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span) + 1  # tenure weeks (first + 1 is 1)
    bucket = tenure_bucket(offset)
    nb = len(TENURE_EDGES)
    # expected blocks of each driver-week from the depot's level and its week's seasonal index,
    # so that the tenure index is not the season seen through when cohorts happen to start
    s_of = np.array([[r["index"] for r in season[i * 53:(i + 1) * 53]] for i in range(len(depots))])  # (D, 53)
    cal = first[who] + offset - 1  # calendar week of each driver-week
    t_active = np.zeros((len(depots), nb))
    np.add.at(t_active, (d_code[who], bucket), s_of[d_code[who], iso[cal] - 1])
    pos = pd.Index(drivers.index).get_indexer(rows["driver_id"])
    t_blocks = np.zeros((len(depots), nb))
    np.add.at(t_blocks, (d_code[pos], tenure_bucket(rows["w"].to_numpy() - first[pos] + 1)), rows["blocks"].to_numpy())
    tenure = []
    for i, d in enumerate(depots):
        for j, lo in enumerate(TENURE_EDGES):
            if j == 0:  # tenure 0 is a span's first week, left out above
                continue
            A, B = float(t_active[i, j]), float(t_blocks[i, j])
            ratio = B / A / level[i] if A > 0 and level[i] > 0 else 1.0
            hi = TENURE_EDGES[j + 1] - 1 if j + 1 < nb else None
            tenure.append({"depot": d, "tenure_weeks": f"{lo}-{hi}" if hi is not None and hi > lo else
                           (f"{lo}" if hi is not None else f"{lo}+"), "index": (A * ratio + shrink) / (A + shrink),
                           "blocks": B, "driver_weeks": A})
    return pd.DataFrame(season), pd.DataFrame(tenure)


def supply_table(season: pd.DataFrame, blocks_per_driver: dict[str, float], start_date, weeks: int) -> pd.DataFrame:
    """supply.csv of an instance: per depot and week t = 1..``weeks`` from ``start_date`` (a
    Monday), blocks_per_driver[d] x the seasonal index of week t's ISO week of year
    (blocks/driver/week). Depots without an index keep their constant (index 1)."""
    start = pd.Timestamp(start_date)
    woy = [int((start + pd.Timedelta(weeks=t)).isocalendar()[1]) for t in range(weeks)]
    index = season.set_index(["depot", "week_of_year"])["index"]
    rows = []
    for d, b in blocks_per_driver.items():
        for t, k in enumerate(woy, start=1):
            s = float(index.get((d, k), 1.0))
            rows.append({"depot": d, "week": t, "blocks_per_driver": float(b) * s})
    return pd.DataFrame(rows, columns=["depot", "week", "blocks_per_driver"])
