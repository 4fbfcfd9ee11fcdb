"""Command line: ``python -m pmt_core`` (or ``pmt``).

Subcommands::

    explain AUDIO [AUDIO ...] [--checkpoint reports/models/s1s2.pt]
            [--rule epsilon_zplus] [--out FILE.png | --out DIR | --no-png]
            [--json] [--top 10] [--device cpu] [--any-config]
    cache info  [--cache-dir DIR]
    cache clear [--cache-dir DIR]
    baseline update REPORT.json BASELINE.json
    baseline compare REPORT.json BASELINE.json [--json]
    claims [--json] [--group GROUP]
    stats coverage [--json] [--sims N] [--seed S] [--workers W]
    rates errors RATES.csv [--out FILE.json]
    readme REPORT.json [--readme README.md] [--snapshot FILE.json]

Error contract: a user error (a bad argument, a missing or damaged file, an
incompatible checkpoint, silent audio, a bad baseline, a folder that is not a
cache) prints one line, ``error: ...``, to stderr and exits with status 2; drift
found by ``baseline compare`` exits with status 1; anything else is a bug and
keeps its traceback. Inputs are checked before any long work, and no command
writes over an input or deletes what it did not create: ``explain`` writes only a
``.png`` that is not an input (by default ``FILE.relevance.png``, the recording's
whole name kept), ``baseline update`` replaces only a baseline file,
``readme`` only the marked blocks of the README it is given and an earlier
snapshot, ``cache clear`` removes only cache entries.

``explain`` takes files and folders (a folder: its WAV and FLAC files). Every
path, input and output, and the checkpoint are checked before the first
recording is scattered; a problem there (a missing file, two recordings that
would write one map, ``--out x.png`` for several recordings) is one ``error:``
line and status 2 with nothing done. A recording that fails later (unreadable,
silent) prints one ``error: FILE: ...`` line on stderr and the others are still
explained; the status is then 2. ``--json`` prints one JSON object per explained
recording on stdout (JSON Lines, strict JSON: no NaN); the text output escapes
control characters in file and class names.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

EXIT_ERROR = 2
EXIT_DRIFT = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (not usage + message)."""

    def error(self, message: str):
        """Print ``error: PROG: MESSAGE`` on one line and exit with status 2."""
        text = " ".join(message.split())
        self.exit(EXIT_ERROR, f"error: {self.prog}: {text} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """Argument type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _device(text: str) -> str:
    """Argument type: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``."""
    if re.fullmatch(r"cpu|auto|cuda(:\d+)?", text):
        return text
    raise argparse.ArgumentTypeError(f"unsupported device {text!r}; use cpu, cuda, cuda:N "
                                     "or auto")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m pmt_core``."""
    from pmt_core.explain.lrp import RULES
    from pmt_core.explain_audio import DEFAULT_CHECKPOINT, DEFAULT_RULE

    parser = _Parser(
        prog="python -m pmt_core",
        description="Explain recordings with the validated model; manage the feature cache "
                    "and regression baselines.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain", help="classify recordings and map their LRP relevance (carrier x modulation)",
        description="Scatter each recording, classify its playing technique with a trained "
                    "checkpoint, explain the prediction with LRP (one-hot top relevance, as in "
                    "the validation suite) and write the relevance map over carrier "
                    "(lambda1) x modulation (lambda2) in Hz as a PNG. A recording that fails "
                    "is reported on stderr and the others go on (exit status 2).")
    explain.add_argument("audio", metavar="AUDIO", nargs="+",
                         help="WAV or FLAC recording, or a folder of them (its .wav and .flac "
                              "files, not its subfolders)")
    explain.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT),
                         help="trained model (default: %(default)s, written by "
                              "'pytest validation')")
    explain.add_argument("--rule", default=DEFAULT_RULE, choices=sorted(RULES),
                         help="LRP rule set (default: %(default)s, the paper's text; "
                              "zplus_epsilon is the authors' code)")
    maps = explain.add_mutually_exclusive_group()
    maps.add_argument("--out", default=None,
                      help="one AUDIO file: the PNG to write (default: AUDIO.relevance.png, "
                           "e.g. take.wav.relevance.png); several or a folder: the folder "
                           "for DIR/NAME.relevance.png (default: next to each recording); "
                           "never an input")
    maps.add_argument("--no-png", action="store_true", help="write no relevance map")
    explain.add_argument("--json", action="store_true",
                         help="one JSON object per recording and line (JSON Lines)")
    explain.add_argument("--top", type=_count, default=10, help="paths to list (default 10)")
    explain.add_argument("--device", default="cpu", type=_device,
                         help="'cpu' (default), 'cuda' or 'auto'")
    explain.add_argument("--any-config", action="store_true",
                         help="accept a checkpoint trained on other scattering settings than "
                              "the paper's (the validated ones)")

    cache = commands.add_parser("cache", help="feature cache: where it is, clear it")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    for name, text in (("info", "show the cache folder and what it holds"),
                       ("clear", "remove the cache's entries (refuses a folder holding "
                                 "anything else)")):
        sub = cache_commands.add_parser(name, help=text, description=text)
        sub.add_argument("--cache-dir", default=None,
                         help="cache folder (default $PMT_CACHE_DIR or ~/.cache/pmt-validation;"
                              " 'off' disables)")

    baseline = commands.add_parser("baseline", help="regression baselines of validation runs")
    base_commands = baseline.add_subparsers(dest="baseline_command", required=True,
                                            metavar="ACTION")
    update = base_commands.add_parser("update", help="write a baseline from a validation.json")
    compare = base_commands.add_parser(
        "compare", help="compare a validation.json with a baseline (exit 1 on drift)")
    for sub in (update, compare):
        sub.add_argument("report", help="a run's validation.json")
        sub.add_argument("baseline", help="baseline JSON file")
    compare.add_argument("--json", action="store_true",
                         help="print the comparison as JSON (summary, drifts, verdict changes)")

    claims = commands.add_parser(
        "claims", help="list every claim with its bounds, role and power",
        description="List the registered claims (pmt_core.claims): id, title, group, role "
                    "(gate or finding), bounds (figure, operator, bar, minimum effect), "
                    "paper value, Holm family size and the profiles sized to decide it; "
                    "with --power, each claim's power at a run's size and the size that "
                    "would decide it (read from that run's validation.json).")
    claims.add_argument("--json", action="store_true", help="machine-readable list")
    claims.add_argument("--group", default=None, help="only this group (data, accuracy, ...)")
    claims.add_argument("--power", nargs="?", const="reports/validation.json", default=None,
                        metavar="REPORT", help="add the power analysis of a run (default "
                                               "reports/validation.json)")

    stats = commands.add_parser("stats", help="the statistics' own checks")
    stats_commands = stats.add_subparsers(dest="stats_command", required=True, metavar="ACTION")
    coverage = stats_commands.add_parser(
        "coverage", help="coverage of every interval method, simulated in the suite's layouts",
        description="Simulate each interval method (pmt_core.stats.intervals) in the suite's "
                    "layouts (pmt_core.stats.coverage) and print how often its 95%% interval "
                    "holds the true value, with the Monte Carlo error.")
    coverage.add_argument("--json", action="store_true", help="machine-readable list")
    coverage.add_argument("--sims", type=_count, default=2000,
                          help="simulations per scenario (default %(default)s)")
    coverage.add_argument("--seed", type=_count, default=0, help="seed (default 0)")
    coverage.add_argument("--workers", type=_count, default=2,
                          help="processes (default %(default)s; the figures do not depend "
                               "on it)")
    readme = commands.add_parser(
        "readme", help="a run's measured tables as Markdown (the README's are generated so)",
        description="Print the measured tables of a run's validation.json as Markdown (the "
                    "scoreboard of the paper's statements; per LRP reading, the physics and "
                    "model statements); with --readme, replace each generated block of that "
                    "file, and with --snapshot keep what they were made from (the README's "
                    "test reads it).")
    readme.add_argument("report", metavar="REPORT", help="a run's validation.json")
    readme.add_argument("--readme", default=None, metavar="FILE",
                        help="replace the blocks between the generated-block markers here")
    readme.add_argument("--snapshot", default=None, metavar="FILE.json",
                        help="write what the blocks read here (a new file or an earlier "
                             "snapshot)")
    rates = commands.add_parser("rates", help="the rate estimator's measured error")
    rates_commands = rates.add_subparsers(dest="rates_command", required=True, metavar="ACTION")
    errors = rates_commands.add_parser(
        "errors", help="measure the estimator's error from a run's rates.csv",
        description="Measure the rate estimator's error per technique (quantiles of "
                    "log2(estimate / recorded rate) over confident estimates) from the "
                    "rates.csv of a run on data that record their rates, and write it as "
                    "JSON (the table the rate claims read when a data set records none: "
                    "pmt_core/data/rate_errors.json).")
    errors.add_argument("rates_csv", metavar="RATES.csv", help="a run's reports/rates.csv")
    errors.add_argument("--out", default=None, metavar="FILE.json",
                        help="write here (a new file, or an earlier table); default: print")
    errors.add_argument("--source", default="", help="what the rates.csv was made from, "
                                                     "stored as the table's provenance")
    return parser


def claims_listing(group: str | None = None) -> list[dict]:
    """Every registered claim as a plain dict (the ``claims --json`` contract).

    Keys: ``id``, ``title``, ``group``, ``bounds`` (each ``figure``, ``op``,
    ``value``, ``name``, ``why``; a bar that depends on the run is ``null``),
    ``paper``, ``unit``, ``role`` (gate or finding), ``family_size`` (its Holm
    family) and ``decided_by`` (profiles sized to decide it).
    """
    from pmt_core.claims.catalogue import all_cases
    from pmt_core.profiles import PROFILES

    out = []
    for case in all_cases(group):
        bounds = []
        for b in case.bounds:
            entry = b.to_dict()
            if callable(b.value):
                entry["value"] = None
            bounds.append(entry)
        out.append({"id": case.id, "title": case.title, "group": case.spec.group,
                    "bounds": bounds, "paper": case.spec.paper, "unit": case.spec.unit,
                    "role": case.spec.role, "family_size": len(case.spec.cases()),
                    "decided_by": [n for n, p in PROFILES.items() if p.decides_claim(case.id)]})
    return out


def _read_report(path: str, needs: str) -> dict:
    """Return a run's validation.json, refused unless it holds the list ``needs``."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _UserError(f"cannot read report {path}: {exc}") from exc
    if not isinstance(report, dict) or not isinstance(report.get(needs), list):
        raise _UserError(f"{path} is not a validation report (no {needs} list)")
    return report


def _power_of(report_path: str) -> dict:
    """Claim id -> its ``power`` record from a run's validation.json."""
    path = Path(report_path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        return {r["id"]: r.get("power") for r in report["claims"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _UserError(f"--power: cannot read a validation report at {path}: {exc}") from None


def _claims(args) -> int:
    from pmt_core.claims.core import CLAIMS

    groups = {spec.group for spec in CLAIMS.values()} or set()
    listing = claims_listing(args.group)
    if args.group is not None and not listing:
        known = sorted(groups | {c["group"] for c in claims_listing()})
        raise _UserError(f"--group {args.group!r}: no such group; known: {', '.join(known)}")
    if args.power is not None:
        power = _power_of(args.power)
        for c in listing:
            c["power"] = power.get(c["id"])
    if args.json:
        print(json.dumps(listing, indent=1, default=str))
        return 0
    for c in listing:
        bars = "; ".join(f"{b['figure']} {b['op']} "
                         f"{'(run-dependent)' if b['value'] is None else b['value']}"
                         for b in c["bounds"])
        paper = f"\n    paper: {c['paper']}" if c["paper"] is not None else ""
        role = (f"\n    {c['role']}; Holm family of {c['family_size']}; sized to decide by: "
                f"{', '.join(c['decided_by']) or 'no profile'}")
        power = ""
        if c.get("power"):
            p = c["power"]
            power = (f"\n    power {p['power']:.2f} at n = {p['n']}, {p['replicates']} "
                     f"replicates for an effect of {p['minimum_effect']:g}; 80 % needs "
                     f"n = {p['n_needed'] or 'unreachable'} or "
                     f"{p['replicates_needed'] or 'unreachable'} replicates")
        print(f"{c['id']}\n    {c['title']}\n    bounds: {bars}{paper}{role}{power}")
    return 0


def _explain(args) -> int:
    from pmt_core.explain_audio import Explainer, format_explanation, write_relevance_png
    from pmt_core.explain_files import ExplainError, expand_inputs, plan_outputs
    from pmt_core.infra.checks import check_input_file, one_line, printable

    # Every path is checked before the checkpoint is loaded and the first scatter.
    recordings, single = expand_inputs(args.audio)
    check_input_file(args.checkpoint, "--checkpoint")
    outputs = ([None] * len(recordings) if args.no_png
               else plan_outputs(recordings, args.out, args.checkpoint, single))
    explainer = Explainer.load(args.checkpoint, rule=args.rule,
                               device=None if args.device == "auto" else args.device,
                               any_config=args.any_config)
    failed = 0
    for audio, out in zip(recordings, outputs, strict=True):
        try:
            explanation = explainer.explain(audio)
            if out is not None:
                title = (f"{printable(audio.name)}: {printable(explanation.predicted)} "
                         f"(p = {explanation.probabilities[explanation.predicted]:.2f}), "
                         f"LRP {args.rule}")
                # rechecked at the write (plan_outputs checked it against every input)
                write_relevance_png(explanation, out, title, inputs=[audio, args.checkpoint])
        except ExplainError as exc:
            # one recording's fault (unreadable, silent): report it, explain the others
            print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
            failed += 1
            continue
        if args.json:
            print(json.dumps(explanation.to_record(audio, args.top, out), allow_nan=False),
                  flush=True)
        else:
            print(format_explanation(explanation, str(audio), args.top))
            print(f"  relevance map: {printable(out) if out is not None else 'not written'}",
                  flush=True)
    return EXIT_ERROR if failed else 0


def cache_summary(root: Path | None) -> dict:
    """Folder, marker, entries, size (bytes), namespaces and foreign items of the cache."""
    from pmt_core.infra.cache import inspect_cache

    if root is None:
        return {"folder": None, "enabled": False}
    found = inspect_cache(root)
    return {"folder": str(root), "enabled": True, "exists": found.exists,
            "marked": found.marked, "entries": found.entries, "bytes": found.bytes,
            "namespaces": found.namespaces, "temporaries": len(found.temporaries),
            "foreign": [str(p) for p in found.foreign], "inventory": found}


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def _cache(args) -> int:
    from pmt_core.infra.cache import ENV_VAR, MARKER, clear_cache, resolve_cache_dir

    root = resolve_cache_dir(args.cache_dir)
    info = cache_summary(root)
    if not info["enabled"]:
        where = "--cache-dir" if args.cache_dir is not None else f"${ENV_VAR}"
        print(f"cache disabled ({where} is off): nothing to "
              f"{'clear' if args.cache_command == 'clear' else 'show'}")
        return 0
    if args.cache_command == "clear":
        clear_cache(root)  # raises, removing nothing, unless every item is an entry
        print(f"cache cleared: {root} ({info['entries']} entries, {_mib(info['bytes'])}"
              " removed)" if info["exists"] else f"cache cleared: {root} (nothing there)")
        return 0
    if not info["exists"]:
        print(f"folder: {root} (not created yet)")
        return 0
    print(f"folder: {root}")
    print(f"marker: {MARKER} " + ("present" if info["marked"] else
                                  "absent (not created by this version of the cache)"))
    print(f"entries: {info['entries']} ({_mib(info['bytes'])}) in "
          f"{len(info['namespaces'])} namespace(s)")
    for namespace, (entries, size) in info["namespaces"].items():
        print(f"namespace: {namespace} ({entries} entries, {_mib(size)})")
    if info["temporaries"]:
        print(f"temporary files: {info['temporaries']} (left by interrupted writes; "
              "'cache clear' removes them)")
    if info["foreign"]:
        print(f"not cache entries: {len(info['foreign'])} "
              f"({info['inventory'].describe_foreign()}); 'cache clear' refuses while they "
              "are there")
    return 0


def _baseline(args) -> int:
    from pmt_core.infra.checks import check_output_path
    from pmt_core.report.regression import (
        BaselineError,
        compare,
        is_baseline_file,
        load_baseline,
        write_baseline,
    )

    if args.baseline_command == "update":
        # Checked first: the baseline replaces only an older baseline, never the
        # report it is made from or another file.
        check_output_path(args.baseline, inputs=[args.report], name="BASELINE",
                          may_replace=is_baseline_file)
    report = _read_report(args.report, "claims")
    if args.baseline_command == "update":
        try:
            path = write_baseline(report, args.baseline)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # a claim without an id, a figure that is NaN (JSON cannot hold it), ...
            raise _UserError(f"{args.report} is not a usable validation report: "
                             f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise _UserError(f"cannot write baseline {args.baseline}: {exc}") from exc
        print(f"baseline written: {path} ({len(report['claims'])} claims)")
        return 0
    try:
        baseline = load_baseline(args.baseline)
    except BaselineError as exc:
        raise _UserError(str(exc)) from exc
    try:
        result = compare(baseline, report)
    except (KeyError, TypeError, AttributeError) as exc:
        raise _UserError(f"{args.report} or {args.baseline} is malformed: "
                         f"{type(exc).__name__}: {exc}") from exc
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(result.summary())
        # Verdict changes first, once each: they are drift lines too, not repeated.
        for change in result.verdict_changes:
            label = "verdict " if change.get("drift", True) else "listed  "
            print(f"  {label} {change['claim']}: {change['baseline']} -> {change['current']}")
        for drift in result.drifts:
            if drift.kind != "verdict":
                print(f"  drift    {drift.describe()}")
    return EXIT_DRIFT if result.drifts else 0


def _stats(args) -> int:
    from pmt_core.stats.coverage import format_table, run_coverage

    if args.sims < 1:
        raise _UserError("--sims must be at least 1")
    rows = run_coverage(args.sims, args.seed, workers=args.workers)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0


def _rates(args) -> int:
    import pandas as pd

    from pmt_core.data.rates import error_table, format_error_table
    from pmt_core.infra.atomic import atomic_path
    from pmt_core.infra.provenance import git_state

    source = Path(args.rates_csv)
    if not source.is_file():
        raise _UserError(f"{source}: no such file (a run writes rates.csv to its report folder)")
    try:
        frame = pd.read_csv(source)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise _UserError(f"{source}: not a rates table ({exc})") from exc
    try:
        table = error_table(frame, {"source": args.source or str(source),
                                    "commit": git_state()["git_commit"],
                                    "command": f"python -m pmt_core rates errors {source}"})
    except ValueError as exc:
        raise _UserError(f"{source}: {exc}") from exc
    text = format_error_table(table)
    if args.out is None:
        print(text, end="")
        return 0
    out = Path(args.out)
    if out.exists() and not _is_error_table(out):
        raise _UserError(f"{out} exists and is not an error table: not overwritten")
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)
    print(f"wrote {out}: " + ", ".join(f"{k} {n}" for k, n in table["n"].items()))
    return 0


def _readme(args) -> int:
    from pmt_core.infra.atomic import write_text_atomic
    from pmt_core.report.markdown import BLOCKS, replace_block, snapshot

    report = _read_report(args.report, "scoreboard")
    blocks = {name: write(report) for name, write in BLOCKS.items()}
    text = None
    if args.readme is not None:
        # every block is checked before anything is written: a file lacking a
        # block's markers is left as it is
        try:
            text = Path(args.readme).read_text(encoding="utf-8")
            for name, block in blocks.items():
                text = replace_block(text, name, block)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise _UserError(f"{args.readme}: {exc}") from exc
    if args.snapshot is not None:
        out = Path(args.snapshot)
        if out.exists() and not _is_readme_snapshot(out):
            raise _UserError(f"{out} exists and is not a README snapshot: not replaced")
        write_text_atomic(out, json.dumps(snapshot(report), indent=1, allow_nan=False) + "\n")
    if text is not None:
        write_text_atomic(args.readme, text)
        print(f"replaced {len(blocks)} generated blocks of {args.readme}")
    else:
        print("\n\n".join(blocks.values()))
    return 0


def _is_readme_snapshot(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == "pmt-readme-snapshot"
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def _is_error_table(path: Path) -> bool:
    try:
        return {"quantiles", "probabilities"} <= set(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return False


class _UserError(Exception):
    """An error whose message is all the user needs (no traceback)."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0, 1 on drift, 2 on a user error)."""
    from pmt_core.infra.checks import CheckError, one_line
    from pmt_core.report.regression import BaselineError

    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        # no command at all: the help is the answer, not a usage error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    handlers = {"explain": _explain, "cache": _cache, "baseline": _baseline, "claims": _claims,
                "stats": _stats, "rates": _rates, "readme": _readme}
    try:
        return handlers[args.command](args)
    except (CheckError, BaselineError, _UserError) as exc:
        # CheckError covers ExplainError, AudioError, CheckpointError, CacheError,
        # DatasetError: messages written for the user. Anything else is a bug.
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
