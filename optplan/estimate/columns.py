"""The applicant log's column names the readers and the funnel share, in a module that imports
nothing, so that reading a log (optplan.estimate.logs, and the history reader through it) does
not load scikit-learn with the funnel (about 1 s)."""

from __future__ import annotations

#: The funnel's stages in order: one date column each in an applicant log.
DEFAULT_STAGES = ("applied", "background_check", "onboarding", "first_block")
#: Optional column of a log: each applicant's own end of observation (a date; empty: the
#: log's observed_until). Real logs often follow each applicant for a window after applying.
WINDOW_COLUMN = "observed_until"
#: Column of an applicant log with the sign-on bonus offered to each applicant (currency per
#: converted driver, paid on the first block; empty or 0: none). A numeric covariate of the
#: funnel like any other; ``optplan.estimate.funnel.bonus_response`` turns its fitted effect into
#: the conversion response the instance's bonuses.csv takes.
BONUS_COLUMN = "bonus"
