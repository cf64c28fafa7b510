"""Explanation: sensitivity (``sensitivity``), the stochastic-programming values
(``stochastic``), the HTML report (``report``), planner words for every number
(``presentation``) and deterministic SVG figures (``plots``)."""
