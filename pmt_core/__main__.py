"""Command line: ``python -m pmt_core`` (or ``pmt``).

Subcommands::

    explain FILE.wav [--checkpoint reports/models/s1s2.pt] [--rule epsilon_zplus]
                     [--out FILE.png] [--top 10] [--device cpu] [--any-config]
    cache info  [--cache-dir DIR]
    cache clear [--cache-dir DIR]
    baseline update REPORT.json BASELINE.json
    baseline compare REPORT.json BASELINE.json

User errors (missing files, incompatible checkpoints, silent audio, bad
baselines) print one line to stderr and exit with status 2; drift found by
``baseline compare`` exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_ERROR = 2
EXIT_DRIFT = 1


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m pmt_core``."""
    from pmt_core.explain.lrp import RULES

    from .explain_audio import DEFAULT_CHECKPOINT, DEFAULT_RULE

    parser = argparse.ArgumentParser(
        prog="python -m pmt_core",
        description="Explain recordings with the validated model; manage the feature cache "
                    "and regression baselines.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain", help="classify a recording and map its LRP relevance (carrier x modulation)",
        description="Scatter a recording, classify its playing technique with a trained "
                    "checkpoint, explain the prediction with LRP and write the relevance map "
                    "over carrier (lambda1) x modulation (lambda2) in Hz as a PNG.")
    explain.add_argument("audio", metavar="FILE", help="WAV or FLAC recording")
    explain.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT),
                         help="trained model (default: %(default)s, written by "
                              "'pytest validation')")
    explain.add_argument("--rule", default=DEFAULT_RULE, choices=sorted(RULES),
                         help="LRP rule set (default: %(default)s, the paper's text; "
                              "zplus_epsilon is the authors' code)")
    explain.add_argument("--out", default=None,
                         help="PNG to write (default: FILE with suffix .relevance.png)")
    explain.add_argument("--top", type=int, default=10, help="paths to list (default 10)")
    explain.add_argument("--device", default="cpu",
                         help="'cpu' (default), 'cuda' or 'auto'")
    explain.add_argument("--any-config", action="store_true",
                         help="accept a checkpoint trained on other scattering settings than "
                              "the paper's (the validated ones)")

    cache = commands.add_parser("cache", help="feature cache: where it is, clear it")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    for name, text in (("info", "show the cache folder, its entries and size"),
                       ("clear", "delete the whole cache folder")):
        sub = cache_commands.add_parser(name, help=text, description=text)
        sub.add_argument("--cache-dir", default=None,
                         help="cache folder (default $PMT_CACHE_DIR or ~/.cache/pmt-validation)")

    baseline = commands.add_parser("baseline", help="regression baselines of validation runs")
    base_commands = baseline.add_subparsers(dest="baseline_command", required=True,
                                            metavar="ACTION")
    update = base_commands.add_parser("update", help="write a baseline from a validation.json")
    compare = base_commands.add_parser(
        "compare", help="compare a validation.json with a baseline (exit 1 on drift)")
    for sub in (update, compare):
        sub.add_argument("report", help="a run's validation.json")
        sub.add_argument("baseline", help="baseline JSON file")
    return parser


def _explain(args) -> int:
    from .explain_audio import explain_recording, format_explanation, write_relevance_png

    if args.top < 0:
        raise _UserError("--top must be 0 or more")
    explanation = explain_recording(args.audio, args.checkpoint, rule=args.rule,
                                    device=None if args.device == "auto" else args.device,
                                    any_config=args.any_config)
    out = Path(args.out) if args.out else Path(args.audio).with_suffix(".relevance.png")
    title = (f"{Path(args.audio).name}: {explanation.predicted} "
             f"(p = {explanation.probabilities[explanation.predicted]:.2f}), LRP {args.rule}")
    write_relevance_png(explanation, out, title)
    print(format_explanation(explanation, args.audio, args.top))
    print(f"  relevance map: {out}")
    return 0


def cache_summary(root: Path | None) -> dict:
    """Folder, entries, size (bytes) and namespaces of the feature cache."""
    if root is None:
        return {"folder": None, "enabled": False}
    entries = list(root.glob("*/*/*.npz")) if root.exists() else []
    return {"folder": str(root), "enabled": True, "exists": root.exists(),
            "entries": len(entries), "bytes": sum(p.stat().st_size for p in entries),
            "namespaces": sorted({p.parent.parent.name for p in entries})}


def _cache(args) -> int:
    from pmt_core.infra.cache import ENV_VAR, clear_cache, default_cache_dir

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if args.cache_command == "clear":
        cleared = clear_cache(root)
        print(f"cache cleared: {cleared}" if cleared is not None
              else f"cache disabled (${ENV_VAR}): nothing to clear")
        return 0
    info = cache_summary(root)
    if not info["enabled"]:
        print(f"cache disabled (${ENV_VAR} is off)")
        return 0
    print(f"folder: {info['folder']}{'' if info['exists'] else ' (not created yet)'}")
    print(f"entries: {info['entries']} ({info['bytes'] / 2**20:.1f} MiB)")
    for namespace in info["namespaces"]:
        print(f"namespace: {namespace}")
    return 0


def _baseline(args) -> int:
    from pmt_core.report.regression import (
        BaselineError,
        compare,
        load_baseline,
        run_context,
        write_baseline,
    )

    try:
        report = json.loads(Path(args.report).read_text(encoding="utf-8"))
        if not isinstance(report, dict) or not isinstance(report.get("claims"), list):
            raise _UserError(f"{args.report} is not a validation report (no claims list)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _UserError(f"cannot read report {args.report}: {exc}") from exc
    if args.baseline_command == "update":
        path = write_baseline(report, args.baseline)
        print(f"baseline written: {path} ({len(report['claims'])} claims)")
        return 0
    try:
        baseline = load_baseline(args.baseline)
    except BaselineError as exc:
        raise _UserError(str(exc)) from exc
    result = compare(baseline, report["claims"], context=run_context(report))
    print(result.summary())
    for drift in result.drifts:
        print(f"  drift  {drift.describe()}")
    return EXIT_DRIFT if result.drifts else 0


class _UserError(Exception):
    """An error whose message is all the user needs (no traceback)."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from .explain_audio import ExplainError

    args = build_parser().parse_args(argv)
    handlers = {"explain": _explain, "cache": _cache, "baseline": _baseline}
    try:
        return handlers[args.command](args)
    except (ExplainError, _UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
