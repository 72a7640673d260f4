"""Data attribution from weights: the activation engine, the probe / bank / behavior methods, the gradient (LESS)
baseline, random rankings, and their quality metrics and reports. Judge delta reads responses, not weights: it lives
in `benchmark.studies.judge_delta`, whose `attribute` runs every method."""
