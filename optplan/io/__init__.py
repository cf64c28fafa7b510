"""Input and output: the instance format (``schema``), reading and validating instances
(``instance``, ``inputs``), what-if changes (``whatif``), long-lead period layouts
(``periods``), synthetic instances (``generate``), atomic file writes (``atomic``)."""
