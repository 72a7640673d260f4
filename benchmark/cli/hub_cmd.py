"""Hub commands: `push-benchmark`, `pull`, `submit`.

The token is read only from the HF_TOKEN environment variable; HF_ENDPOINT points at another Hub-compatible
server (huggingface_hub reads it). `pull` also checks and installs the revision's smol organism (adapters, mix,
manifest) where the smol profile finds it offline; see docs/hub.md.
"""

from __future__ import annotations

import argparse

from benchmark.cli.base import console, leaf, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push-benchmark",
                       help="publish prompts, preference mix, judge labels and the smol organism as one dataset")
    p.add_argument("--repo", required=True, help="dataset repo id, owner/name")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing; default main)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--preference-mix", default=None, metavar="PATH",
                   help="the smol preference mix (parquet file or saved folder; default: where the package keeps it)")
    p.add_argument("--no-preference-mix", action="store_true", help="leave the preference mix out")
    p.add_argument("--organism", default=None, metavar="DIR",
                   help="the smol organism folder to publish under organism/smol/ (default: the one the smol "
                        "profile reads)")
    p.add_argument("--no-organism", action="store_true", help="leave the smol organism out")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(p, run_push)

    q = sub.add_parser("pull", help="download a pinned revision of the benchmark dataset for offline use")
    q.add_argument("--repo", required=True, help="dataset repo id, owner/name")
    q.add_argument("--revision", required=True, help="commit sha (or tag/branch) to pin")
    q.add_argument("--organism-dir", default=None, metavar="DIR",
                   help="where to install the revision's smol organism (default: the cache's organisms/smol, "
                        "read when the package ships none; otherwise point ORGANISM_BENCH_SMOL_DIR at DIR)")
    q.add_argument("--no-organism", action="store_true", help="do not install the revision's smol organism")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(q, run_pull)

    s = sub.add_parser("submit", help="open a pull request adding a run's results to a results dataset")
    s.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `evaluate`")
    s.add_argument("--repo", required=True, help="results dataset repo id, owner/name")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(s, run_submit)


def run_push(args: argparse.Namespace) -> int:
    from leaderboard.hub import push_benchmark

    mix = False if args.no_preference_mix else args.preference_mix
    organism = False if args.no_organism else args.organism
    r = push_benchmark(args.repo, revision=args.revision, private=args.private, preference_mix=mix,
                       organism=organism)
    if args.json:
        print_json({"repo": r.repo, "revision": r.revision, "commit": r.commit, "files": list(r.files),
                    "notes": list(r.notes)})
        return 0
    out = console()
    for n in r.notes:
        out.print(f"note: {n}")
    out.print(f"pushed {len(r.files)} files to {r.repo} ({r.revision}); pin this revision: {r.commit}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from leaderboard.hub import ORGANISM_PATH, pull, pull_organism
    from organism.models.profiles import SMOL_DIR_ENV

    r = pull(args.repo, args.revision, skip=[f"{ORGANISM_PATH}/**"] if args.no_organism else [])
    o = None if args.no_organism else pull_organism(r, args.organism_dir)
    organism = None if o is None else {
        "path": str(o.path), "files": o.files, "bytes": o.bytes, "file_list_sha256": o.file_list_sha256,
        "smol_profile_reads": str(o.shadowed_by or o.path)}
    if args.json:
        print_json({"repo": r.repo, "revision": r.revision, "commit": r.commit, "path": str(r.path),
                    "organism": organism})
        return 0
    out = console()
    out.print(f"pulled {r.repo} at {r.revision} (commit {r.commit}) into {r.path}; it now loads offline")
    if o is not None:
        out.print(f"smol organism: {o.files} files checked against their sha256 and installed in {o.path}")
        if o.shadowed_by is not None:
            out.print(f"note: the smol profile reads {o.shadowed_by}; to use the pulled organism, set "
                      f"{SMOL_DIR_ENV}={o.path}")
    elif not args.no_organism:
        out.print("note: this revision carries no smol organism")
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from leaderboard.hub import submit

    r = submit(args.run_dir, args.repo)
    if args.json:
        print_json({"repo": r.repo, "pr_url": r.pr_url, "commit": r.commit, "paths": list(r.paths)})
        return 0
    console().print(f"opened a pull request on {r.repo}: {r.pr_url}")
    return 0
