"""The studies that need generation or a judge: the causal check, judge-delta attribution, probe targets, discovery,
the steering sweep, the smol organism's build pipeline (which samples candidates and measures rates), and the
organism health report (base, M0 and M1 side by side on what the target pathology should leave intact).

Importing this package stays cheap: the names below load their module on first use. The health run is
`run_health`, not `organism_health`, so the name never shadows the module benchmark.studies.organism_health.
"""

from benchcore.lazy import lazy_exports

_NAMES = {
    "HealthCheck": "benchmark.studies.organism_health",
    "HealthReport": "benchmark.studies.organism_health",
    "run_health": "benchmark.studies.organism_health",
}
__all__ = ["HealthCheck", "HealthReport", "run_health"]
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
