"""Stress worlds for ``optplan simulate --worlds`` (issue #32 part 3): demand paths from worlds
that break the assumptions the policies plan with, every policy scored on each.

The policies keep planning with the instance's scenarios, their probabilities and the
sampler's noise (``--noise``, ``--noise-ar``); only the world that makes the demand changes:

    nominal            the sampler's own model (optplan.evaluation.sampling.sample_demand)
    noise:K            the noise's log-sd K times --noise (K > 0; e.g. noise:3)
    fat:K              fat tails: each week's noise innovation is, with probability FAT_SHARE
                       (5 %), K times as wide as otherwise (a contaminated normal, variance
                       kept at 1, so the log-sd stays --noise); the factor keeps mean 1 exactly
    shift:P@W          a level shift: from week W (1-based) on, demand at half the depots (every
                       other one, from the first) is (1 + P) times the sampler's (e.g.
                       shift:0.25@8); shift:P@W:D001+D004 names the depots
    probabilities:C    the scenarios drawn with probabilities from a Dirichlet around the
                       instance's with concentration C per scenario (smaller: further off;
                       e.g. probabilities:1), the same for every path of the world
    history:PATH       real forecast errors in place of the sampler's noise: each path's depot
                       gets a random store and start week of the weekly history PATH (optplan
                       forecast's format) and its demand is the scenario's times that store's
                       actual / seasonal-naive forecast (the same week a year before) over the
                       following weeks, divided by the history's mean ratio (mean 1): holidays
                       that move, level drifts and outliers as a real series has them
                       (``history_factors``)

Common random numbers: every world draws its paths from the same seed, so nominal, noise,
shift and probabilities worlds share the scenario draws and the standard normals underneath
(the world's change is all that differs between them); fat tails draw the contamination too.
Each world's policy costs are paired by path (the same driver luck across policies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from formulations.data import ModelData, period_offsets
from optplan.errors import OptionError
from optplan.evaluation.sampling import sample_demand
from optplan.forecast.history import read_history

#: fat:K: the share of weeks whose noise innovation is K times as wide.
FAT_SHARE = 0.05
#: The worlds ``--worlds all`` means (the issue's five; a history-driven world needs a history).
DEFAULT_WORLDS = ("nominal", "noise:3", "fat:4", "shift:0.25@8", "probabilities:1")
KINDS = ("nominal", "noise", "fat", "shift", "probabilities", "history")
#: history:PATH: the seasonal-naive forecast's lag (weeks).
SEASON_WEEKS = 52
_SPEC = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<arg>[^:]+)(?::(?P<depots>.+))?)?$")


@dataclass(frozen=True)
class World:
    """One world: ``kind`` (KINDS), ``value`` (K, P or C), ``week`` (shift: 1-based first
    week), ``depots`` (shift: depot ids; empty: every other depot), ``source`` (history: the
    history CSV's path)."""

    name: str
    kind: str
    value: float = 0.0
    week: int = 0
    depots: tuple[str, ...] = ()
    source: str = ""

    def describe(self) -> str:
        if self.kind == "nominal":
            return "the sampler's own model"
        if self.kind == "noise":
            return f"noise {self.value:g} times as wide"
        if self.kind == "fat":
            return f"fat tails ({FAT_SHARE:.0%} of weeks with noise {self.value:g} times as wide, same variance)"
        if self.kind == "shift":
            where = ", ".join(self.depots) if self.depots else "every other depot"
            return f"demand {self.value:+.0%} from week {self.week} at {where}"
        if self.kind == "history":
            return (f"real forecast errors of {self.source} (a random store and week: actual / the same week a year "
                    "before, mean 1) in place of the sampler's noise")
        return f"scenario probabilities drawn around the instance's (Dirichlet, concentration {self.value:g})"


def parse_worlds(text: str) -> tuple[World, ...]:
    """'nominal,noise:3,shift:0.25@8' -> Worlds; 'all' -> DEFAULT_WORLDS. An OptionError
    names the first bad spec and what was expected."""
    specs = DEFAULT_WORLDS if text.strip() == "all" else tuple(s.strip() for s in text.split(",") if s.strip())
    expected = ("comma-separated worlds: nominal, noise:K, fat:K, shift:P@W (or shift:P@W:D1+D2), probabilities:C, "
                "history:PATH, or all")
    if not specs:
        raise OptionError("--worlds", expected, text)
    out = []
    for spec in specs:
        m = _SPEC.match(spec)
        kind = m.group("kind") if m else None
        arg = m.group("arg") if m else None
        try:
            if kind == "nominal" and arg is None:
                out.append(World(spec, kind))
            elif kind == "history" and arg is not None and m.group("depots") is None:
                out.append(World(spec, kind, source=arg))
            elif kind in ("noise", "fat", "probabilities") and arg is not None and m.group("depots") is None:
                value = float(arg)
                if not (np.isfinite(value) and value > 0):
                    raise ValueError
                out.append(World(spec, kind, value))
            elif kind == "shift" and arg is not None and "@" in arg:
                p, w = arg.split("@")
                value, week = float(p), int(w)
                if not (np.isfinite(value) and value > -1 and week >= 1):
                    raise ValueError
                depots = tuple(d for d in (m.group("depots") or "").split("+") if d)
                out.append(World(spec, kind, value, week, depots))
            else:
                raise ValueError
        except ValueError:
            raise OptionError("--worlds", expected + " (K, C > 0; P > -1; W a week from 1)", spec) from None
    names = [w.name for w in out]
    if len(set(names)) < len(names):
        raise OptionError("--worlds", "each world once", ",".join(names))
    return tuple(out)


def sample_world(data: ModelData, world: World, n_paths: int, seed: int, sigma: float, noise_ar: float) -> np.ndarray:
    """(N, D, T) demand paths (blocks/week) of ``world``, drawn from ``seed``."""
    check_worlds(data, (world,))
    rng = np.random.default_rng(seed)
    if world.kind == "nominal":
        return sample_demand(data, n_paths, rng, sigma, noise_ar)
    if world.kind == "noise":
        return sample_demand(data, n_paths, rng, sigma * world.value, noise_ar)
    if world.kind == "fat":
        return sample_demand(data, n_paths, rng, sigma, noise_ar, fat=(FAT_SHARE, world.value))
    if world.kind == "probabilities":
        q = dirichlet_probabilities(data.probability, world.value, seed)
        return sample_demand(replace(data, probability=q), n_paths, rng, sigma, noise_ar)
    if world.kind == "history":  # the scenarios drawn as in every world, real errors in place of the noise
        scenarios = sample_demand(data, n_paths, rng, 0.0, noise_ar)
        W = int(data.period_length.sum())
        factor = history_factors(_history_ratios(world.source), n_paths, len(data.depots), W,
                                 np.random.default_rng([seed, 11]))
        if data.has_periods:  # a period's demand times the mean of its weeks' factors
            starts = period_offsets(data.period_length.astype(int))
            factor = np.add.reduceat(factor, starts, axis=2) / data.period_length[None, None, :]
        return scenarios * factor
    paths = sample_demand(data, n_paths, rng, sigma, noise_ar)
    chosen = [data.depots.index(d) for d in world.depots] if world.depots else list(range(0, len(data.depots), 2))
    paths[:, chosen, world.week - 1:] *= 1.0 + world.value
    return paths


def check_worlds(data: ModelData, worlds) -> None:
    """An OptionError for the first world the instance cannot have: a shift week past its
    horizon, or depots it does not have (before any solve or draw)."""
    for world in worlds:
        if world.kind == "history":
            ratios = _history_ratios(world.source)
            W = int(data.period_length.sum())
            if not _windows(ratios, W)[0].size:
                raise OptionError("--worlds", f"a history with a store of at least {SEASON_WEEKS + W} weeks of positive "
                                  f"demand ({SEASON_WEEKS} for the seasonal-naive forecast, {W} for the horizon)",
                                  f"{world.source}: {ratios.shape[0] + SEASON_WEEKS} weeks")
            continue
        if world.kind != "shift":
            continue
        if world.week > data.n_weeks:
            raise OptionError("--worlds", f"a shift week within the horizon (1..{data.n_weeks})", world.name)
        unknown = [d for d in world.depots if d not in data.depots]
        if unknown:
            raise OptionError("--worlds", f"depots of the instance ({', '.join(data.depots[:5])}, ...)",
                              ", ".join(unknown))


def dirichlet_probabilities(probability: np.ndarray, concentration: float, seed: int) -> np.ndarray:
    """Scenario probabilities drawn from Dirichlet(concentration x S x p) around ``p``
    (mean p; smaller concentration: further off), from ``seed`` (the same for every path)."""
    p = np.asarray(probability, float) / np.sum(probability)
    q = np.random.default_rng([seed, 7]).dirichlet(np.maximum(concentration * len(p) * p, 1e-3))
    return q / q.sum()


@lru_cache(maxsize=4)
def _history_ratios(source: str) -> np.ndarray:
    """(W - SEASON_WEEKS, J) each store's actual / seasonal-naive forecast, y[t] / y[t - 52], for
    the weeks of the history at ``source`` from its 53rd (NaN where either week has no positive
    demand). A file that cannot be read as a history: optplan forecast's InstanceError, one line
    per problem (file, row, field)."""
    y = np.asarray(read_history(source).blocks, float)  # (W, J)
    ok = np.isfinite(y) & (y > 0)
    now, before = y[SEASON_WEEKS:], y[:-SEASON_WEEKS]
    both = ok[SEASON_WEEKS:] & ok[:-SEASON_WEEKS]
    return np.where(both, now / np.where(both, before, 1.0), np.nan)


def _windows(ratios: np.ndarray, weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """(stores, starts) of every window of ``weeks`` consecutive ratios all defined."""
    R, J = ratios.shape
    if weeks > R:
        return np.zeros(0, int), np.zeros(0, int)
    ok = np.isfinite(ratios).astype(int)
    run = np.concatenate([np.zeros((1, J), int), np.cumsum(ok, axis=0)])  # (R + 1, J)
    full = (run[weeks:] - run[:-weeks]) == weeks  # (R - weeks + 1, J): window from each start all defined
    starts, stores = np.nonzero(full)
    return stores, starts


def history_factors(ratios: np.ndarray, n_paths: int, n_depots: int, weeks: int, rng: np.random.Generator) -> np.ndarray:
    """(N, D, W) the history world's demand factors: for each path and depot a window of
    ``weeks`` drawn uniformly from every store and start where all its ratios (actual /
    seasonal-naive forecast, ``_history_ratios``) are defined, divided by the mean ratio over
    all those windows' weeks, so that the factor has mean 1 over the draws (what the history's
    growth from one year to the next would add is not a forecast error the scenarios missed)."""
    stores, starts = _windows(ratios, weeks)
    if not stores.size:
        raise OptionError("--worlds", f"a history with {weeks} weeks of ratios in a row", "none")
    span = starts[:, None] + np.arange(weeks)[None, :]  # (K, W) weeks of each window
    table = ratios[span, stores[:, None]]  # (K, W)
    pick = rng.integers(0, len(stores), size=(n_paths, n_depots))
    return table[pick] / table.mean()
