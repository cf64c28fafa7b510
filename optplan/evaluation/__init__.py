"""Evaluation and simulation: the independent evaluator of a plan (``evaluator``), the one
out-of-sample sampler (``sampling``) and the policy simulation (``policy``). Downstream of
the plan; they call the formulations' numpy kernels, never a restatement of them."""
