"""Both customers' side of a plan: service to customers and work for drivers.

Per depot (and for the network, by summing first), in expectation over scenarios:

    service level      = 1 - E[unserved] / E[demand]                       share of demand served
    driver utilisation = 1 - E[idle] / planned capacity                     share of offered blocks that get work
    blocks per driver  = (planned capacity - E[idle]) / sum_t active_t      blocks worked per active driver-week

Planned capacity counts every block offered (drivers' blocks and blocks bought by planned
incentives: both are driver hours); idle blocks are offered and not worked. A depot with
no demand has service level 1; one with no capacity (or no drivers) has utilisation and
blocks per driver undefined (NaN, written as empty cells).

``service_kpis`` is the numpy kernel; the evaluator, the plan's per-depot table and the
report call it. (Service and utilisation targets as constraints will put their rows here.)
"""

from __future__ import annotations

import numpy as np


def service_kpis(demand, unserved, idle, capacity, active, probability, by_depot: bool = True) -> dict[str, np.ndarray]:
    """Expected service and driver KPIs from demand, unserved and idle blocks (D, T, S),
    planned capacity (D, T) blocks/week and active drivers (D, T), scenario probabilities
    (S,). Per depot arrays (D,) with ``by_depot``, else network scalars (0-d arrays):
    demand_blocks, unserved_blocks, capacity_blocks, idle_blocks (blocks over the horizon),
    driver_weeks (active driver-weeks), service_level, driver_utilisation (shares) and
    blocks_per_driver_week (blocks per active driver per week)."""
    p = np.asarray(probability, float)
    axes = (1,) if by_depot else (0, 1)
    exp = lambda a: np.einsum("dts,s->dt", np.asarray(a, float), p).sum(axis=axes)  # noqa: E731 - blocks
    dem, uns, idl = exp(demand), exp(unserved), exp(idle)
    cap = np.asarray(capacity, float).sum(axis=axes)
    drivers = np.asarray(active, float).sum(axis=axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "demand_blocks": dem,
            "unserved_blocks": uns,
            "capacity_blocks": cap,
            "idle_blocks": idl,
            "driver_weeks": drivers,
            "service_level": np.where(dem > 0, 1.0 - uns / np.where(dem > 0, dem, 1.0), 1.0),
            "driver_utilisation": np.where(cap > 0, 1.0 - idl / np.where(cap > 0, cap, 1.0), np.nan),
            "blocks_per_driver_week": np.where(drivers > 0, (cap - idl) / np.where(drivers > 0, drivers, 1.0), np.nan),
        }
