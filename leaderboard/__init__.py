"""Static HTML leaderboards and the Hub: push the benchmark, pull it pinned, submit results.

Importing this package stays cheap: every public name loads its module on first use.
"""

from benchcore.lazy import lazy_exports

_NAMES = {
    "build_leaderboard": "leaderboard.site",
    "load_run": "leaderboard.entries",
    "push_benchmark": "leaderboard.hub",
    "pull": "leaderboard.hub",
    "submit": "leaderboard.hub",
    "download_results": "leaderboard.hub",
}
__all__ = ["build_leaderboard", "download_results", "load_run", "pull", "push_benchmark", "submit"]  # = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
