"""`organism-bench steer-sweep`: the harmful rate of M0 (base and distractor variants) with scale x a probing
vector added to (or projected out of) the output of each decoder layer in a list, next to the unsteered baseline.

The direction is a vector file (`--vector`, safetensors with one tensor "vector", used at every layer) or a
targets file (`--targets`, a probing vector computed at each layer). Writes the table as JSON (`-o`) and, with
`--markdown`, as a markdown page; prints it as a rich table.
"""

from __future__ import annotations

import argparse

from benchmark.cli.base import add_judge_options, add_output, console, judge_options, leaf, print_json
from benchcore.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("steer-sweep", help="layer sweep of the judged rate (harm or compliance) under activation "
                                          "steering")
    p.add_argument("--profile", required=True, help="organism profile (see `organism-bench ls --profiles`)")
    p.add_argument("--stage", default="m0", help="which model is steered (default m0, as in the paper)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--vector", default=None, help="steering vector: .safetensors holding one tensor 'vector'")
    src.add_argument("--targets", default=None,
                     help="targets JSONL ({prompt, harmful_response, safe_response} or {prompt, response, label}): "
                          "a probing vector is computed at each layer")
    p.add_argument("--layers", required=True, metavar="L,L,A-B",
                   help="0-based decoder layers whose output is steered, e.g. 16-26 or 1,5,10")
    p.add_argument("--scales", default="2.0", metavar="S,S", help="scales to try at each layer (default 2.0)")
    p.add_argument("--mode", choices=("add", "project_out"), default="add")
    p.add_argument("--positions", choices=("generated", "all"), default="generated",
                   help="steer only the positions that choose generated tokens (default), or every position")
    p.add_argument("--split", default="dev", help="dtc-harmful split (default dev: choosing a layer is tuning)")
    p.add_argument("--prompts", type=int, default=None, metavar="N", help="first N scenarios (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", default="auto", help="generation batch size or 'auto'")
    p.add_argument("--judge", default="refusal", help="a registered judge (default refusal)")
    add_judge_options(p)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model-path", default=None, help="a local checkpoint folder to steer instead of the stage's")
    p.add_argument("--revision", default=None, help="checkpoint revision (Hub profiles)")
    p.add_argument("--harmful-side", choices=("m0", "m1"), default="m0",
                   help="--targets: the model that teacher-forces the harmful responses (m0 = the paper's equation)")
    p.add_argument("--chat-template", action="store_true", help="--targets: teacher-force with the chat template")
    add_output(p, "JSON file to write", required=True)
    p.add_argument("--markdown", default=None, metavar="FILE", help="also write the table as markdown")
    p.add_argument("--samples", default=None, metavar="FILE",
                   help="also write every response with its verdict and NLL as JSONL (what each rate counted)")
    p.add_argument("--json", action="store_true", help="print the JSON instead of a table")
    leaf(p, run)


def parse_ints(text: str, field: str) -> tuple[int, ...]:
    """'1,5,10' or '16-26' (inclusive) or a mix of both."""
    out: list[int] = []
    for part in (x.strip() for x in str(text).split(",")):
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                a, b = int(part[:cut]), int(part[cut + 1:])
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise InputError("command line", field, f"{part!r} is not an integer or a range A-B") from None
    return tuple(out)


def parse_floats(text: str, field: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in str(text).split(","))
    except ValueError:
        raise InputError("command line", field, f"{text!r} is not a comma-separated list of numbers") from None


def run(args: argparse.Namespace) -> int:
    from benchmark.studies.steering_sweep import SweepConfig, format_number, format_rate, run_sweep

    options = judge_options(args)
    batch = args.batch_size
    if batch != "auto":
        try:
            batch = int(batch)
        except ValueError:
            raise InputError("command line", "batch_size", f"must be an integer or 'auto', got {batch!r}") from None
    spec = SweepConfig(
        profile=args.profile, stage=args.stage, vector=args.vector, targets=args.targets,
        layers=parse_ints(args.layers, "layers"), scales=parse_floats(args.scales, "scales"), mode=args.mode,
        positions=args.positions, split=args.split, n_prompts=args.prompts, max_new_tokens=args.max_new_tokens,
        seed=args.seed, batch_size=batch, judge=args.judge, judge_options=options, dtype=args.dtype,
        device=args.device, model_path=args.model_path, revision=args.revision, harmful_side=args.harmful_side,
        chat_template=args.chat_template,
    )
    if args.json:
        result = run_sweep(spec)
    else:
        from benchmark.cli.progress import stage_progress

        with stage_progress() as bar:
            result = run_sweep(spec, progress=bar)
    result.write_json(args.output)
    if args.markdown:
        result.write_markdown(args.markdown)
    if args.samples:
        result.write_samples(args.samples)
    if args.json:
        print_json(result.to_dict())
        return 0
    from rich.table import Table

    from benchmark.judges import HARM, judge_measure

    measure = judge_measure(args.judge) or HARM
    table = Table(title=f"steering sweep: {spec.profile} {spec.stage}, {spec.mode}, split {spec.split}, "
                        f"n={result.baseline.n} scenarios ({measure.rate}, judge {args.judge}, Wilson 95% CI)")
    for col in ("layer", "scale", "mode", measure.base, measure.distractor, "n", "changed", "NLL",
                "added/residual"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in result.table:
        table.add_row("baseline" if r.layer is None else str(r.layer), f"{r.scale:g}", r.mode,
                      format_rate(r.harmful_base, r.ci_base), format_rate(r.harmful_distractor, r.ci_distractor),
                      str(r.n), f"{r.changed_vs_baseline:.0%}", format_number(r.nll), format_number(r.relative_norm))
    out = console()
    out.print(table)
    out.print("wrote " + ", ".join(str(f) for f in (args.output, args.markdown, args.samples) if f))
    return 0
