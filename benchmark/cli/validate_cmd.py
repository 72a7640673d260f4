"""`organism-bench validate SPEC`: check a mitigation spec and print its normalized form and hash.

Submitters run this before anything costs GPU time; bad input exits 2 with one line naming the field.
"""

from __future__ import annotations

import argparse

from benchmark.cli.base import console, leaf, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a mitigation spec; print it normalized with its hash")
    p.add_argument("spec", metavar="SPEC", help="mitigation spec file (YAML or JSON)")
    p.add_argument("--profile", default=None, help="organism profile to check against (overrides the spec's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(p, run)


def run(args: argparse.Namespace) -> int:
    from benchmark.evaluation.spec import load_spec, spec_hash

    spec = load_spec(args.spec, profile=args.profile)
    data = {"spec": spec.to_dict(), "files_sha256": spec.file_digests(), "spec_hash": spec_hash(spec)}
    if args.json:
        print_json(data)
        return 0
    import yaml

    out = console()
    out.print(f"[bold]{spec.name}[/bold] ({spec.kind}, profile {spec.profile}): valid", markup=True)
    out.print(yaml.safe_dump(data["spec"], sort_keys=False, allow_unicode=True).rstrip(), markup=False)
    for dotted, digest in data["files_sha256"].items():
        out.print(f"sha256 of {dotted}: {digest}", markup=False)
    out.print(f"spec_hash: {data['spec_hash']}", markup=False)
    return 0
