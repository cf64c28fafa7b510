"""Planning: the ``Plan`` a solve returns (``plan``), weekly re-planning from the realised
state (``replan``), and one command from raw data to report (``pipeline``). Downstream of
the instance and the engines (optplan.solvers)."""
