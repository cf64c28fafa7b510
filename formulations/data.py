"""Plain numeric input of the two-stage recruiting program.

`ModelData` is what every engine reads: the Pyomo formulation, the plan evaluator and
(later) the dynamic-programming fallback. It holds numpy arrays only, so it knows nothing
about files; `optplan.io.instance.Instance.model_data()` builds it from an instance.

Index conventions (all 0-based positions into the id lists):
    d: depot, c: channel, t: week (position 0 is week 1), s: scenario, k: lag in weeks,
    g: incentive spend segment.
Periods (long-lead instances, ``period_weeks``): t is then a period of L_t whole weeks and
every "per week" array indexed by t holds that period's total (demand blocks, pipeline
drivers, budget_weekly currency); rates stay weekly (retention, yield_kernel, supply, caps per
week: formulations/two_stage/drivers.py converts them, docs/formulation.md "Long-lead
periods"). Without ``period_weeks`` every period is one week and nothing changes.
Money is in the instance currency (``currency``), drivers are expected headcounts
(fractional), blocks are delivery shifts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Decisions:
    """First-stage decisions of a plan, as dense arrays (what a planner acts on).

    applicants:      (D, C, T) applicants to recruit per depot, channel and week (applicants/week)
    incentive_spend: (D, T, G) planned incentive spend per depot, week and segment (currency/week)
    """

    applicants: np.ndarray
    incentive_spend: np.ndarray

    @classmethod
    def zeros(cls, data: ModelData) -> Decisions:
        """Recruit nothing and spend nothing: always within every budget and cap."""
        D, C, T, _ = data.shape
        return cls(np.zeros((D, C, T)), np.zeros((D, T, data.incentive_width.shape[1])))


@dataclass(frozen=True)
class ModelData:
    """Arrays that parameterize the two-stage program (units in each field's comment)."""

    depots: tuple[str, ...]
    regions: tuple[str, ...]  # region id of each depot, same order as depots
    channels: tuple[str, ...]
    scenarios: tuple[str, ...]
    n_weeks: int
    currency: str
    probability: np.ndarray  # (S,) scenario probability, sums to 1
    initial_active: np.ndarray  # (D,) drivers active at the start (end of week 0)
    retention: np.ndarray  # (D,) weekly probability that an active driver stays active
    blocks_per_driver: np.ndarray  # (D,) blocks per active driver per week
    onboarding_cap: np.ndarray  # (D,) max new active drivers per week (inf: none)
    cost_per_applicant: np.ndarray  # (C,) currency per applicant
    applicant_cap: np.ndarray  # (D, C) max applicants per depot, channel and week (inf: none)
    yield_kernel: np.ndarray  # (C, L+1) probability an applicant of week t is newly active in week t+k
    pipeline: np.ndarray  # (D, T) expected new active drivers already in onboarding, drivers/week
    demand: np.ndarray  # (D, T, S) blocks needed
    incentive_width: np.ndarray  # (D, G) currency per week that a spend segment can take
    incentive_rate: np.ndarray  # (D, G) extra blocks per currency unit in that segment
    surge_cost: float  # currency per surge block
    surge_cap_share: float  # surge blocks at most this share of planned capacity
    unserved_cost: float  # currency per unserved block
    idle_cost: float  # currency per idle block (capacity beyond demand)
    budget_total: float  # currency over the horizon (inf: none)
    budget_weekly: np.ndarray  # (T,) currency per week (per period with period_weeks; inf: none)
    budget_region: dict[str, float] = field(default_factory=dict)  # currency over the horizon
    budget_country: dict[str, float] = field(default_factory=dict)  # currency over the horizon, per depot_country id
    integer_applicants: bool = False
    # risk (formulations/two_stage/risk.py): minimise (1 - cvar_weight) E[cost] + cvar_weight CVaR
    cvar_alpha: float = 0.9  # CVaR confidence level in [0, 1): the mean of the worst 1 - alpha of scenarios
    cvar_weight: float = 0.0  # weight of CVaR in the objective, in [0, 1]; 0: expected cost only
    # targets (formulations/two_stage/service.py), shares; NaN / None: none
    service_target: np.ndarray | None = None  # (D,) each depot's expected service level at least this
    network_service_target: float = float("nan")  # the network's expected service level at least this
    region_service_target: dict | None = None  # region id -> the region's expected service level at least this
    utilisation_floor: np.ndarray | None = None  # (D,) each depot's expected driver utilisation at least this
    earnings_floor: np.ndarray | None = None  # (D,) blocks worked per active driver-week at least this (drivers' earnings)
    # bad-week form (service.py, extensive form): CVaR_q of each depot's service shortfall <= 0
    scenario_service_level: np.ndarray | None = None  # (D,) service level y_d to meet in bad scenarios too; NaN: none
    scenario_service_share: float = 0.9  # q in (0, 1): the share of scenarios (by probability) y_d must hold in
    scenario_service_form: str = "cvar"  # "cvar": the CVaR approximation (LP); "chance": the chance constraint (MIP)
    # end of horizon (formulations/two_stage/objective.py): None: drivers left at week T are worth nothing
    terminal_value: np.ndarray | None = None  # (D,) currency per driver active at the end of week T
    # driver supply by week (optplan: supply.csv): None: blocks_per_driver[d] every week
    supply_by_week: np.ndarray | None = None  # (D, T) blocks offered per active driver in week t
    # per-depot recourse prices (optplan: countries with their own currency and penalties,
    # converted at loading): None: the scalar above for every depot
    surge_by_depot: np.ndarray | None = None  # (D,) currency per surge block
    unserved_by_depot: np.ndarray | None = None  # (D,) currency per unserved block
    idle_by_depot: np.ndarray | None = None  # (D,) currency per idle block
    # each depot's country (the members of budget_country's rows), its currency and the value
    # of one local unit in ``currency`` (outputs only: plans show spend in both); None: one country
    depot_country: tuple[str, ...] | None = None
    depot_currency: tuple[str, ...] | None = None
    depot_fx: np.ndarray | None = None  # (D,) currency per local currency unit
    # the instance's channel id of each model channel, where channels are split per country
    # (optplan.io.instance.split_channel); None: the model's channels are the instance's
    channel_source: tuple[str, ...] | None = None
    # sign-on bonuses (formulations/two_stage/bonus.py): a channel with a bonus menu is a pool of
    # model channels (itself and one variant per bonus level) sharing its applicant cap; None: none
    signon_bonus: np.ndarray | None = None  # (C,) currency per converted driver offered with channel c (0: none)
    applicant_pool: np.ndarray | None = None  # (C,) pool id: channels with one id share each depot's applicant cap
    # long-lead periods: weeks in each period t (whole weeks >= 1); None: every period is one week
    period_weeks: np.ndarray | None = None  # (T,) weeks
    # long-lead periods with their weekly demand: the share of each period's demand in each of
    # its weeks, per scenario (j < L_t; the rest 0; each (d, t, s) sums to 1); None: demand even
    # within a period (formulations/two_stage/recourse.py "Weeks inside a period")
    demand_share: np.ndarray | None = None  # (D, T, S, J) shares, J = the longest period's weeks
    # the planner's committed decisions (optplan: decisions.csv; formulations/two_stage/decisions.py):
    # bounds on the first stage within its own bounds; None: none. Per period (x L_t with periods).
    applicants_min: np.ndarray | None = None  # (D, C, T) applicants at least this (0: none)
    applicants_max: np.ndarray | None = None  # (D, C, T) applicants at most this (inf: none)
    incentive_min: np.ndarray | None = None  # (D, T) total incentive spend at least this (currency; 0: none)
    incentive_max: np.ndarray | None = None  # (D, T) total incentive spend at most this (currency; inf: none)
    # orders (optplan.planning.orders): applicants of periods t < whole_weeks are whole numbers
    # (integer columns: a MIP); 0: none beyond integer_applicants
    whole_weeks: int = 0

    @property
    def has_decisions(self) -> bool:
        """The planner fixed or bounded some applicants or incentive spend (decisions.csv)."""
        return any(a is not None for a in (self.applicants_min, self.applicants_max, self.incentive_min,
                                           self.incentive_max))

    def without_decisions(self) -> ModelData:
        """The same data with the planner's decisions left out (what they cost: the difference)."""
        return _replace(self, applicants_min=None, applicants_max=None, incentive_min=None, incentive_max=None)

    @property
    def has_applicant_pools(self) -> bool:
        """Some channels share a finite applicant cap (a channel and its sign-on bonus variants):
        the ``applicant_pool`` rows exist (formulations/two_stage/bonus.py)."""
        if self.applicant_pool is None:
            return False
        pool = np.asarray(self.applicant_pool)
        shared = np.array([np.count_nonzero(pool == p) > 1 for p in pool])
        return bool(np.isfinite(self.applicant_cap[:, shared]).any())

    @property
    def has_week_profile(self) -> bool:
        """Long-lead periods whose recourse is stated week by week (demand_share given)."""
        return self.demand_share is not None and self.has_periods

    @property
    def period_length(self) -> np.ndarray:
        """(T,) weeks in each period L_t (ones for a weekly instance)."""
        if self.period_weeks is None:
            return np.ones(self.n_weeks)
        return np.asarray(self.period_weeks, float)

    @property
    def has_periods(self) -> bool:
        """Some period is longer than one week (a long-lead instance)."""
        return self.period_weeks is not None and bool(np.any(np.asarray(self.period_weeks) != 1))

    def period_starts(self) -> np.ndarray:
        """(T,) first week (1-based) of each period: 1, 2, ... for a weekly instance."""
        return period_offsets(self.period_length) + 1

    def recourse_prices(self, depots=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(surge, unserved, idle) currency per block, each (D,) (or the ``depots`` rows):
        the per-depot prices where given, else the scalar for every depot."""
        idx = np.arange(len(self.depots)) if depots is None else np.atleast_1d(np.asarray(depots, dtype=int))
        out = []
        for arr, scalar in ((self.surge_by_depot, self.surge_cost), (self.unserved_by_depot, self.unserved_cost),
                            (self.idle_by_depot, self.idle_cost)):
            out.append(np.asarray(arr, float)[idx] if arr is not None else np.full(len(idx), float(scalar)))
        return tuple(out)

    def budget_groups(self, family: str) -> np.ndarray:
        """(D,) each depot's group id for a grouped budget family: its region
        ("budget_region") or country ("budget_country"; "" without countries)."""
        if family == "budget_region":
            return np.asarray(self.regions)
        if family == "budget_country":
            return np.asarray(self.depot_country if self.depot_country is not None else ("",) * len(self.depots))
        raise ValueError(f"no grouped budget family {family!r}")

    @property
    def has_country_budgets(self) -> bool:
        """A finite budget on some country's spend."""
        return any(np.isfinite(v) for v in self.budget_country.values())

    def group_caps(self, family: str) -> dict[str, float]:
        """{group id: cap (currency)} of a grouped budget family."""
        caps = {"budget_region": self.budget_region, "budget_country": self.budget_country}
        if family not in caps:
            raise ValueError(f"no grouped budget family {family!r}")
        return caps[family]

    def uniform_prices(self) -> tuple[float, float, float] | None:
        """(surge, unserved, idle) currency per block when every depot has the same, else None."""
        prices = self.recourse_prices()
        if len(self.depots) and any(np.ptp(a) > 0 for a in prices):
            return None
        return tuple(float(a[0]) if len(a) else float(s) for a, s in zip(
            prices, (self.surge_cost, self.unserved_cost, self.idle_cost), strict=True))

    @property
    def has_depot_prices(self) -> bool:
        """Recourse prices differ between depots (several countries)."""
        return self.uniform_prices() is None

    @property
    def has_terminal_value(self) -> bool:
        """Drivers left at the end of the horizon are worth something."""
        return self.terminal_value is not None and bool(np.any(self.terminal_value != 0))

    @property
    def has_scenario_targets(self) -> bool:
        """A bad-week service target set (rows of the extensive form)."""
        return self.scenario_service_level is not None and bool(np.isfinite(self.scenario_service_level).any())

    @property
    def supply(self) -> np.ndarray:
        """(D, T) blocks offered per active driver in each week: b[d,t] (blocks/driver/week);
        the depot's constant blocks_per_driver where no weekly supply is given."""
        if self.supply_by_week is not None:
            return self.supply_by_week
        return np.repeat(self.blocks_per_driver[:, None], self.n_weeks, axis=1)

    @property
    def has_weekly_supply(self) -> bool:
        """Driver supply varies by week somewhere (b[d,t] differs from b[d])."""
        return self.supply_by_week is not None and bool(
            (self.supply_by_week != self.blocks_per_driver[:, None]).any())

    @property
    def has_chance_targets(self) -> bool:
        """The bad-week target is stated as its chance constraint (a MIP)."""
        return self.has_scenario_targets and self.scenario_service_form == "chance"

    @property
    def has_targets(self) -> bool:
        """Any service or utilisation target set."""
        arrays = [a for a in (self.service_target, self.utilisation_floor, self.earnings_floor) if a is not None]
        return (any(np.isfinite(a).any() for a in arrays) or bool(np.isfinite(self.network_service_target))
                or bool(self.region_service_target))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(depots, channels, weeks, scenarios)."""
        return len(self.depots), len(self.channels), self.n_weeks, len(self.scenarios)

    @property
    def n_lags(self) -> int:
        return self.yield_kernel.shape[1]

    def conversion(self) -> np.ndarray:
        """(C,) share of applicants who ever become active drivers."""
        return self.yield_kernel.sum(axis=1)

    def cost_per_driver(self) -> np.ndarray:
        """(C,) recruiting cost per expected new driver: cost_per_applicant / conversion
        (currency/driver; inf for a channel that never converts)."""
        conv = self.conversion()
        return np.where(conv > 0, self.cost_per_applicant / np.where(conv > 0, conv, 1.0), np.inf)

    def mean_lag(self) -> np.ndarray:
        """(C,) mean weeks from applying to a first block among those who convert (weeks; 0 for
        a channel that never converts)."""
        conv = self.conversion()
        lags = np.arange(self.n_lags, dtype=float)
        return np.where(conv > 0, self.yield_kernel @ lags / np.maximum(conv, 1e-300), 0.0)

    def modal_lag(self) -> np.ndarray:
        """(C,) lag in weeks with the largest yield per channel (0 for a channel that never converts)."""
        return np.array([int(np.argmax(row)) if row.sum() > 0 else 0 for row in self.yield_kernel])

    def recruit_mask(self) -> np.ndarray:
        """(D, C, T) True where recruiting can change the plan.

        Applicants of period t only matter if some lag k with yield > 0 lands inside the
        horizon and the channel's cap there is positive: the period's first week w_t (0-based)
        plus the channel's first lag with yield is before the horizon's last week W
        (w_t + k_min < W; weekly: t + k_min < T). Elsewhere recruiting costs money and adds no
        driver inside the horizon, so no variable is created. (For periods this is where the
        period yield kernel Y[c,t,:] of formulations.two_stage.drivers is nonzero, stated
        without it so that the index sets need no driver math.)
        """
        lengths = self.period_length.astype(int)
        total_weeks = int(lengths.sum())
        first_lag = np.array(
            [np.flatnonzero(row > 0)[0] if (row > 0).any() else total_weeks for row in self.yield_kernel]
        )
        starts = period_offsets(lengths)  # (T,) 0-based first week of each period
        lands = starts[None, :] + first_lag[:, None] < total_weeks  # (C, T)
        mask = lands[None, :, :] & (self.applicant_cap[:, :, None] > 0)
        if self.applicants_min is not None:  # a committed recruit is a column even if it lands too late
            mask |= self.applicants_min > 0
        return mask

    def segment_mask(self) -> np.ndarray:
        """(D, G) True for incentive segments that can buy blocks (width > 0 and rate > 0)."""
        return (self.incentive_width > 0) & (self.incentive_rate > 0)

    def for_depot(self, d: int) -> ModelData:
        """Depot d alone, without budgets and without the network's and regions' targets (the
        subproblem of a depot decomposition: depots are coupled only through the budget rows,
        which the decomposition's master holds); its expected cost is depot d's share of the
        network's (the cost is a sum over depots)."""
        keep = [d]

        def own(a):  # a per-depot array (D,) or None
            return None if a is None else np.asarray(a)[keep]

        return _replace(
            self,
            terminal_value=own(self.terminal_value),
            service_target=own(self.service_target),
            utilisation_floor=own(self.utilisation_floor),
            earnings_floor=own(self.earnings_floor),
            scenario_service_level=own(self.scenario_service_level),
            network_service_target=float("nan"),
            region_service_target=None,
            depots=(self.depots[d],),
            regions=(self.regions[d],),
            initial_active=self.initial_active[keep],
            retention=self.retention[keep],
            blocks_per_driver=self.blocks_per_driver[keep],
            supply_by_week=None if self.supply_by_week is None else self.supply_by_week[keep],
            onboarding_cap=self.onboarding_cap[keep],
            applicant_cap=self.applicant_cap[keep],
            pipeline=self.pipeline[keep],
            demand=self.demand[keep],
            incentive_width=self.incentive_width[keep],
            incentive_rate=self.incentive_rate[keep],
            budget_total=np.inf,
            budget_weekly=np.full(self.n_weeks, np.inf),
            budget_region={},
            budget_country={},
            surge_by_depot=None if self.surge_by_depot is None else self.surge_by_depot[keep],
            unserved_by_depot=None if self.unserved_by_depot is None else self.unserved_by_depot[keep],
            idle_by_depot=None if self.idle_by_depot is None else self.idle_by_depot[keep],
            depot_country=None if self.depot_country is None else (self.depot_country[d],),
            depot_currency=None if self.depot_currency is None else (self.depot_currency[d],),
            depot_fx=None if self.depot_fx is None else self.depot_fx[keep],
            demand_share=None if self.demand_share is None else self.demand_share[keep],
            applicants_min=None if self.applicants_min is None else self.applicants_min[keep],
            applicants_max=None if self.applicants_max is None else self.applicants_max[keep],
            incentive_min=None if self.incentive_min is None else self.incentive_min[keep],
            incentive_max=None if self.incentive_max is None else self.incentive_max[keep],
        )

    def with_periods(self, period_weeks, week_profile: bool = False) -> ModelData:
        """This weekly data in long-lead periods of ``period_weeks`` (T',) whole weeks that add
        up to n_weeks: per-period totals of demand (blocks), pipeline (drivers) and the weekly
        budgets (currency); driver supply (blocks/driver/week) averaged over each period's weeks.
        Rates per week (retention, yield, caps per week) stay weekly: the formulation converts
        them (formulations/two_stage/drivers.py). ``week_profile``: keep each period's weekly
        demand as ``demand_share`` (the recourse then stated week by week inside a period)."""
        if self.period_weeks is not None:
            raise ValueError("the data is already in periods")
        if self.has_decisions:
            raise ValueError("committed decisions are per week: state them per period in the long-lead instance")
        lengths = np.asarray(period_weeks, dtype=int)
        if lengths.ndim != 1 or (lengths < 1).any() or lengths.sum() != self.n_weeks:
            raise ValueError(f"period lengths must be whole weeks >= 1 adding up to {self.n_weeks}, got {lengths.tolist()}")
        starts = period_offsets(lengths)

        def total(a, axis):  # sum of each period's weeks along ``axis``
            return np.add.reduceat(np.asarray(a, float), starts, axis=axis)

        demand, share = weekly_demand_in_periods(self.demand, lengths)
        return _replace(
            self,
            n_weeks=len(lengths),
            period_weeks=lengths,
            demand_share=share if week_profile else None,
            demand=demand,
            pipeline=total(self.pipeline, 1),
            budget_weekly=total(self.budget_weekly, 0),
            supply_by_week=None if self.supply_by_week is None else total(self.supply_by_week, 1) / lengths[None, :],
        )

    def with_mean_demand(self) -> ModelData:
        """One scenario, "mean": the probability-weighted mean demand (the expected-value
        problem); with weekly demand in long-lead periods, the mean of each week too."""
        mean = np.einsum("dts,s->dt", self.demand, self.probability)
        share = None
        if self.demand_share is not None:
            weekly = np.einsum("dtsj,dts,s->dtj", self.demand_share, self.demand, self.probability)
            share = np.where(mean[..., None] > 0, weekly / np.where(mean > 0, mean, 1.0)[..., None],
                             self.demand_share[:, :, 0, :])[:, :, None, :]
        return _replace(self, scenarios=("mean",), probability=np.array([1.0]), demand=mean[:, :, None],
                        demand_share=share)

    def with_scenarios(self, keep: list[int] | np.ndarray, probability=None) -> ModelData:
        """A copy restricted to the scenarios at positions ``keep`` (probabilities renormalised
        unless ``probability`` is given)."""
        keep = np.asarray(keep, dtype=int)
        p = self.probability[keep] if probability is None else np.asarray(probability, float)
        if probability is None:
            p = p / p.sum()
        return _replace(
            self,
            scenarios=tuple(self.scenarios[i] for i in keep),
            probability=p,
            demand=self.demand[:, :, keep],
            demand_share=None if self.demand_share is None else self.demand_share[:, :, keep],
        )


def period_offsets(lengths) -> np.ndarray:
    """(T,) 0-based first week of each period of ``lengths`` (T,) weeks: 0, L_1, L_1 + L_2, ..."""
    lengths = np.asarray(lengths, dtype=int)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)


def weekly_demand_in_periods(weekly: np.ndarray, lengths) -> tuple[np.ndarray, np.ndarray]:
    """Weekly demand (D, W, S) in periods of ``lengths`` weeks: (period totals (D, T, S),
    each week's share of its period (D, T, S, J), ``week_shares``)."""
    weekly = np.asarray(weekly, float)
    return np.add.reduceat(weekly, period_offsets(lengths), axis=1), week_shares(weekly, lengths)


def week_shares(weekly: np.ndarray, lengths) -> np.ndarray:
    """(D, T, S, J) each week's share of its period's demand, from weekly demand (D, W, S) and
    period lengths (T,) adding up to W (J = the longest period; a period without demand gets
    even shares)."""
    lengths = np.asarray(lengths, dtype=int)
    D, W, S = weekly.shape
    T, J = len(lengths), int(lengths.max())
    starts = period_offsets(lengths)
    out = np.zeros((D, T, S, J))
    for t, (a, L) in enumerate(zip(starts, lengths, strict=True)):
        block = np.asarray(weekly[:, a:a + L, :], float).transpose(0, 2, 1)  # (D, S, L)
        total = block.sum(axis=2, keepdims=True)
        out[:, t, :, :L] = np.where(total > 0, block / np.where(total > 0, total, 1.0), 1.0 / L)
    return out


def _replace(data: ModelData, **changes) -> ModelData:
    return replace(data, **changes)
