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

Common random numbers: every world draws its paths from the same seed, so nominal, noise,
shift and probabilities worlds share the scenario draws and the standard normals underneath
(the world's change is all that differs between them); fat tails draw the contamination too.
Each world's policy costs are paired by path (the same driver luck across policies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from formulations.data import ModelData
from optplan.errors import OptionError
from optplan.evaluation.sampling import sample_demand

#: fat:K: the share of weeks whose noise innovation is K times as wide.
FAT_SHARE = 0.05
#: The worlds ``--worlds all`` means (the issue's five; a history-driven world needs a history).
DEFAULT_WORLDS = ("nominal", "noise:3", "fat:4", "shift:0.25@8", "probabilities:1")
KINDS = ("nominal", "noise", "fat", "shift", "probabilities")
_SPEC = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<arg>[^:]+)(?::(?P<depots>.+))?)?$")


@dataclass(frozen=True)
class World:
    """One world: ``kind`` (KINDS), ``value`` (K, P or C), ``week`` (shift: 1-based first
    week), ``depots`` (shift: depot ids; empty: every other depot)."""

    name: str
    kind: str
    value: float = 0.0
    week: int = 0
    depots: tuple[str, ...] = ()

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
        return f"scenario probabilities drawn around the instance's (Dirichlet, concentration {self.value:g})"


def parse_worlds(text: str) -> tuple[World, ...]:
    """'nominal,noise:3,shift:0.25@8' -> Worlds; 'all' -> DEFAULT_WORLDS. An OptionError
    names the first bad spec and what was expected."""
    specs = DEFAULT_WORLDS if text.strip() == "all" else tuple(s.strip() for s in text.split(",") if s.strip())
    expected = ("comma-separated worlds: nominal, noise:K, fat:K, shift:P@W (or shift:P@W:D1+D2), probabilities:C, "
                "or all")
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
    paths = sample_demand(data, n_paths, rng, sigma, noise_ar)
    chosen = [data.depots.index(d) for d in world.depots] if world.depots else list(range(0, len(data.depots), 2))
    paths[:, chosen, world.week - 1:] *= 1.0 + world.value
    return paths


def check_worlds(data: ModelData, worlds) -> None:
    """An OptionError for the first world the instance cannot have: a shift week past its
    horizon, or depots it does not have (before any solve or draw)."""
    for world in worlds:
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
