"""Build time and page size of the leaderboard for N synthetic entries (default 100).

    python bench/leaderboard_build.py [--entries 100] [--repeat 3]

Prints the time to read the run directories, to render and write the site, and the sizes of index.html and the
whole site. The run directories are synthetic (tests/fixtures_runs.py: real metrics, breakdowns and scores code on
random labels, 12 prompts x 3 samples per suite), written once before timing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from leaderboard import site
    from leaderboard.entries import collect
    from leaderboard.synthetic import make_run

    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        runs = Path(tmp) / "runs"
        t = time.perf_counter()
        for i in range(args.entries):
            make_run(runs, f"synthetic-{i:03d}", harmful=0.02 + 0.3 * (i % 17) / 17, seed=i)
        print(f"wrote {args.entries} synthetic run dirs in {time.perf_counter() - t:.1f} s (not timed below)")
        reads, renders = [], []
        report = None
        for r in range(args.repeat):
            t0 = time.perf_counter()
            col = collect([runs], reference=False)
            t1 = time.perf_counter()
            report = site.build_site(col.entries, Path(tmp) / f"site-{r}", build_time="bench")
            t2 = time.perf_counter()
            reads.append(t1 - t0)
            renders.append(t2 - t1)
        assert report is not None
        entry_pages = sorted((report.out_dir / site.ENTRY_DIR).glob("*.html"))
        sizes = [p.stat().st_size for p in entry_pages]
        print(f"entries: {args.entries} runs + {report.entries - args.entries} reference/reported rows "
              f"= {report.entries} rows, {report.pages} pages")
        print(f"read runs:      median {statistics.median(reads):.3f} s over {args.repeat} builds")
        print(f"render + write: median {statistics.median(renders):.3f} s")
        print(f"total build:    median {statistics.median(a + b for a, b in zip(reads, renders)):.3f} s")
        print(f"index.html:     {report.index_bytes / 1024:.0f} KiB")
        print(f"entry pages:    median {statistics.median(sizes) / 1024:.1f} KiB, max {max(sizes) / 1024:.1f} KiB")
        print(f"whole site:     {report.total_bytes / 1024 / 1024:.2f} MiB")


if __name__ == "__main__":
    main()
