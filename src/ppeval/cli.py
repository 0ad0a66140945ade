"""The ``ppeval`` command line: a thin layer over the library.

Exit status: 0 done, 1 the data failed validation, 2 a usage or configuration error.
User errors print a message, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import PpevalError

#: Exit status of an unexpected error (a bug in ppeval): 0, 1 and 2 keep their meaning.
INTERNAL_ERROR = 3
#: Validation errors a report run lists before it stops (``ppeval validate`` lists them all).
_MAX_ERRORS_SHOWN = 50


class _Redactor:
    """Keeps the identifiers of the loaded extract out of everything the command prints.

    Validation problems, error messages and warnings pass through it (they can quote data;
    the guard is built only when one is printed). Until an extract is loaded there
    is nothing to hide; after that each text is checked with an
    :class:`~ppeval.privacy.IdentifierGuard` of the extract (built once, on first use), and a
    child, family or report id becomes ``[child id]`` (etc.), a birth date ``[birth date]``.
    Problems name file, row and column instead, so nothing a user needs is lost.
    """

    def __init__(self) -> None:
        self._source: Callable[[], Any] | None = None
        self._guard: Any = None

    def watch(self, source: Callable[[], Any]) -> None:
        """``source()`` returns the loaded Extract, or None while nothing is loaded."""
        self._source = source
        self._guard = None

    def _get_guard(self) -> Any:
        if self._guard is None and self._source is not None:
            ext = self._source()
            if ext is not None:
                from .privacy import IdentifierGuard

                self._guard = IdentifierGuard.from_extract(ext)
        return self._guard

    def __call__(self, text: str, *, dates: bool = True) -> str:
        guard = self._get_guard()
        return text if guard is None else guard.redact(text, dates=dates)


class _Progress:
    """Stage-by-stage progress on stderr for long command-line runs."""

    def __init__(self, quiet: bool = False, redact: _Redactor | None = None):
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.redact = redact or _Redactor()
        #: the stage running now (its progress message), kept with --quiet too, so that
        #: running out of memory can say what was being done
        self.stage: str | None = None

    # Progress lines and notices are ppeval's own texts (stage names, counts of rows, paths
    # from the config): they are not redacted, so a normal run never pays for building the
    # identifier guard. Problems, errors and warnings, which can quote data, are.
    def __call__(self, message: str) -> None:
        self.stage = message
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    def notice(self, command: str, message: str) -> None:
        """A message the user must see even with ``--quiet`` (on stderr)."""
        print(f"ppeval {command}: {message}", file=sys.stderr, flush=True)


def _cmd_synth(args: argparse.Namespace, progress: _Progress) -> int:
    from .synthetic import write_synthetic

    _check_out_dir(Path(args.out))
    progress(f"generating a synthetic extract of {args.children} children (seed {args.seed})")
    out = write_synthetic(args.out, n_children=args.children, seed=args.seed, design=args.design,
                          ncands_birth_dates=not args.ncands_ages)
    _mark_written(out)
    progress(f"wrote {out}")
    return 0


def _validate(config: Path, progress: _Progress, summary: bool = False) -> int:
    from .load import load_extract
    from .validate import summary_lines, triage_lines

    progress(f"loading {config}")
    ext = load_extract(config)
    progress.redact.watch(lambda: ext)
    progress(f"loaded {ext!r}; validating")
    report = ext.validate()
    # root causes first (a file missing or refused), the problems that follow from each under it
    for line in (summary_lines if summary else triage_lines)(report):
        # problems never repeat an id (file, row and column locate it); the redactor makes sure
        print(progress.redact(line, dates=False))
    print(report.summary())
    return 1 if report.has_errors else 0


def _cmd_validate(args: argparse.Namespace, progress: _Progress) -> int:
    return _validate(Path(args.config), progress, summary=args.summary)


def _load_valid(config: Path, progress: _Progress):
    """Load and validate; a data error stops the run with every problem listed."""
    from .config import Config
    from .errors import DataError
    from .load import load_extract

    cfg = Config.from_toml(config)
    progress(f"loading {config}")
    ext = load_extract(cfg)
    progress.redact.watch(lambda: ext)
    report = ext.validate()
    if report.has_errors:
        for problem in report.ordered():  # root causes first
            if problem.severity == "error":
                print(progress.redact(str(problem), dates=False), file=sys.stderr)
        raise DataError(f"the extract failed validation ({report.summary()}); run 'ppeval validate {config}'")
    progress(f"loaded and validated {ext!r} ({report.summary()})")
    return cfg, ext


def _cmd_cohort(args: argparse.Namespace, progress: _Progress) -> int:
    from .cohort import build_cohort_from_config
    from .io_safety import check_outside_inputs, check_replaceable_file, config_inputs, record_file
    from .table_out import check_table_path, write_table

    out = Path(args.out)
    check_table_path(out)  # before any work: the suffix must name a format ppeval writes
    check_replaceable_file(out)
    cfg, ext = _load_valid(Path(args.config), progress)
    check_outside_inputs(out, config_inputs(cfg))
    progress("building the cohort and its outcomes")
    cohort = build_cohort_from_config(ext, cfg)
    data = cohort.data[[c for c in cohort.data.columns if not c.startswith("_")]]
    # written whole or not at all: a killed run leaves the previous file, never half of one
    write_table(out, data)
    record_file(out)
    # the console is a log: the flow as the report publishes it, small counts suppressed
    import pandas as pd

    from .privacy import format_count
    from .report.content import flow_table

    thr = cfg["report"]["suppress_below"]
    flow = flow_table(cohort.flow.to_frame(), thr)
    for c in ("treated", "comparison", "total"):
        flow[c] = [format_count(None if pd.isna(v) else int(v), thr) for v in flow[c]]
    print(f"{'treated':>9} {'comparison':>11} {'total':>9}  step")
    for _, r in flow.iterrows():  # a dozen flow steps, not data rows
        print(f"{r['treated']:>9} {r['comparison']:>11} {r['total']:>9}  {r['step']}")
    progress(f"wrote {format_count(len(data), thr)} units to {out} (unit-level data: never publish this file)")
    return 0


def _cmd_indicators(args: argparse.Namespace, progress: _Progress) -> int:
    from pandas import NA as pd_NA

    from .indicators import cfsr_indicators

    if args.out:
        from .io_safety import check_replaceable_file
        from .table_out import check_table_path

        check_table_path(args.out)  # before any work
        check_replaceable_file(args.out)
    cfg, ext = _load_valid(Path(args.config), progress)
    progress("computing CFSR-style observed indicators (not risk-standardised)")
    threshold = cfg["report"]["suppress_below"]
    table = suppress_indicators(cfsr_indicators(ext), threshold)
    if args.out:
        from .io_safety import check_replaceable_file, record_file
        from .table_out import write_table

        check_replaceable_file(args.out)
        write_table(args.out, table, float_format="%.6g")
        record_file(args.out)
    shown = table.drop(columns=["suppressed"]).astype(object)
    for c in ("denominator", "numerator", "rate"):
        shown[c] = [
            "suppressed" if v is None or v is pd_NA or v != v else (f"{v:.3f}" if c == "rate" else f"{int(v)}")
            for v in table[c].astype(object)
        ]
    print(shown.to_string(index=False))
    if threshold < 2:  # allow_unsuppressed = true: say so, never "from 1 to 0"
        from .privacy import UNSUPPRESSED_NOTE

        print(UNSUPPRESSED_NOTE)
    else:
        print(f"counts from 1 to {threshold - 1} are suppressed (with complementary suppression)")
    return 0


def suppress_indicators(table, threshold: int):
    """Small-cell suppression of the indicator table: per indicator and year, the arms add up
    to "all" and each numerator counts units of its denominator; hidden counts and the rates
    built on them become missing, with ``suppressed`` True on the row.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"indicator": ["P1"] * 3, "year": [2016] * 3, "arm": ["all", "not served", "served"],
    ...                   "denominator": [40, 35, 5], "numerator": [20, 18, 2], "rate": [0.5, 18 / 35, 0.4], "note": ""})
    >>> suppress_indicators(t, 11)[["arm", "denominator", "numerator", "suppressed"]].values.tolist()
    [['all', 40, 20, False], ['not served', <NA>, <NA>, True], ['served', <NA>, <NA>, True]]
    """
    import pandas as pd

    from .privacy import suppress_counts

    if table.empty:
        return table.assign(suppressed=pd.Series(dtype=bool))
    parts = []
    for _key, grp in table.groupby(["indicator", "year"], sort=False):
        t = grp.set_index("arm")
        rows = {"all", "not served", "served"} & set(t.index)
        kw = {"total_row": "all"} if "all" in t.index and len(rows) == 3 else (
            {"row_sums": {"all": [r for r in t.index if r != "all"]}} if "all" in t.index and len(t) > 1 else {})
        res = suppress_counts(t[["denominator", "numerator", "rate"]], ["denominator"], threshold,
                              events={"numerator": "denominator"}, rate_cols={"rate": ("numerator", "denominator")}, **kw)
        out = grp.copy()
        for c in ("denominator", "numerator"):
            out[c] = pd.array(res.table[c].to_numpy(), dtype="Int64")
        out["rate"] = pd.array(res.table["rate"].to_numpy(), dtype="Float64")
        out["suppressed"] = res.mask.any(axis=1).to_numpy()
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


def _cmd_demo(args: argparse.Namespace, progress: _Progress) -> int:
    from .synthetic import write_synthetic

    out = Path(args.out)
    data_dir = out / "data"
    _check_out_dir(data_dir)
    _check_out_dir(out / "report")
    progress(f"writing the synthetic extract and eval.toml to {data_dir}")
    write_synthetic(data_dir, n_children=args.children, seed=args.seed)
    _mark_written(data_dir)
    status = _validate(data_dir / "eval.toml", progress)
    if status != 0:
        return status
    return _run_report(data_dir / "eval.toml", out / "report", progress, pdf=getattr(args, "pdf", False))


def _run_report(config: Path, out: Path, progress: _Progress, pdf: bool = False, charts_only: bool = False) -> int:
    from .errors import DataError
    from .evaluation import Evaluation
    from .io_safety import check_outside_inputs, config_inputs
    from .report import write_report

    _check_out_dir(out)
    ev = Evaluation.from_toml(config, progress=progress)
    check_outside_inputs(out, config_inputs(ev.config))
    progress.redact.watch(lambda: ev._extract)
    _check_inputs_unchanged(ev, out, progress)
    logged = None
    try:
        if not charts_only:
            # inside the try: the check builds the cohort, so invalid data is reported below
            logged = _differencing_check(ev, config)
        write_report(ev, out, pdf=pdf, charts_only=charts_only)
    except DataError as exc:
        if not exc.problems:
            raise
        # the validation errors, as `ppeval validate` prints them (the first ones)
        for problem in exc.problems[:_MAX_ERRORS_SHOWN]:
            print(progress.redact(str(problem), dates=False), file=sys.stderr)
        more = len(exc.problems) - _MAX_ERRORS_SHOWN
        extra = f" ({more} more not shown)" if more > 0 else ""
        raise DataError(
            f"the extract failed validation ({len(exc.problems)} error(s){extra}); nothing was written; "
            f"run 'ppeval validate {config}' to list every problem"
        ) from None
    progress(f"wrote {out}")
    if logged is not None:
        from . import runlog

        try:
            runlog.append(*logged)
        except OSError as exc:  # the report stands; say the log could not keep it
            print(f"WARNING: the run log {logged[0]} was not written ({exc}); set [report] run_log", file=sys.stderr)
    if not charts_only:
        print(out / "report.html")
    return 0


def _differencing_check(ev, config: Path):
    """Warn (console and report notes) when this cohort nearly repeats a published one; the log line to append."""
    from . import runlog

    path = runlog.log_path(config, ev.config)
    rec = runlog.record(ev, config)
    warning = runlog.differencing_warning(rec, runlog.read(path), ev.config["report"]["suppress_below"])
    if warning:
        ev.notes.append(f"WARNING: {warning}")
        print(f"WARNING: {warning}", file=sys.stderr)
    return path, rec


def _check_inputs_unchanged(ev, out: Path, progress: _Progress) -> None:
    """Say which input changed since the previous report in ``out`` (a rerun on the same
    inputs and config is byte-identical, so a different report has a reason to be named).

    Shown even with ``--quiet``: the previous report's numbers are about to be replaced.
    """
    import json

    previous = out / "results.json"
    if not previous.is_file():
        return
    try:
        old_inputs = json.loads(previous.read_text(encoding="utf-8")).get("inputs")
        if not isinstance(old_inputs, list):
            return
        old = {f["path"]: f["sha256"] for f in old_inputs}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # not a report of ours (or damaged): nothing to compare with
    now = {f["path"]: f["sha256"] for f in ev.extract.provenance()}
    for path, digest in now.items():
        if path not in old:
            progress.notice("report", f"input added since the previous report: {path}")
        elif old[path] != digest:
            progress.notice("report", f"input changed since the previous report: {path}")
    for path in old:
        if path not in now:
            progress.notice("report", f"input no longer read since the previous report: {path}")


def _check_out_dir(out: Path) -> None:
    """Refuse, before any work, an output folder ppeval may not replace (see io_safety)."""
    from .io_safety import check_replaceable_dir

    check_replaceable_dir(out)


def _mark_written(folder: Path) -> None:
    """Record what ppeval wrote in ``folder``, so that a rerun may replace it and nothing else."""
    from .io_safety import write_manifest

    write_manifest(folder)


def _cmd_report(args: argparse.Namespace, progress: _Progress) -> int:
    config = Path(args.config)
    out = Path(args.out) if args.out else Path("reports") / config.stem
    return _run_report(config, out, progress, pdf=args.pdf)


def _cmd_charts(args: argparse.Namespace, progress: _Progress) -> int:
    return _run_report(Path(args.config), Path(args.out), progress, charts_only=True)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="ppeval",
        description="Evaluate a peer-parent (parent partner) program with an agency's child-welfare extract.",
    )
    parser.add_argument("--version", action="version", version=f"ppeval {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="write a synthetic extract and run the full evaluation on it")
    p.add_argument("--out", default="reports/demo", help="output folder (default reports/demo)")
    p.add_argument("--children", type=int, default=4000, help="children in the synthetic extract")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--pdf", action="store_true", help="also write PDFs (needs ppeval[pdf])")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("synth", help="write a synthetic extract, eval.toml and truth.json")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--children", type=int, default=4000, help="number of children (default 4000)")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--design", choices=["in_care", "prevention"], default="in_care")
    p.add_argument("--ncands-ages", action="store_true",
                   help="write the NCANDS files as distributed: the age at the report (ChAge), no birth date (ChBDate)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("validate", help="load an extract and list every problem")
    p.add_argument("config", help="the evaluation's TOML config")
    p.add_argument("--summary", action="store_true",
                   help="one line per kind of problem: its count and first three locations")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("report", help="run the evaluation and write the report")
    p.add_argument("config")
    p.add_argument("--out", default=None)
    p.add_argument("--pdf", action="store_true", help="also write report.pdf and factsheet.pdf (needs ppeval[pdf])")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("charts", help="write the chart pack only")
    p.add_argument("config")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_charts)

    p = sub.add_parser("cohort", help="write the analysis cohort (unit-level; never published)")
    p.add_argument("config")
    p.add_argument("--out", required=True, help="a .csv, .parquet or .xlsx file (the suffix says the format)")
    p.set_defaults(func=_cmd_cohort)

    p = sub.add_parser("indicators", help="CFSR-style observed indicators (P1, P4, S2) by entry year and arm")
    p.add_argument("config")
    p.add_argument("--out", default=None, help="also write the table to a .csv, .parquet or .xlsx file")
    p.set_defaults(func=_cmd_indicators)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    redact = _Redactor()
    progress = _Progress(quiet=args.quiet, redact=redact)
    _Terminated.requested = False
    previous_term = _terminate_like_interrupt()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(redact)
            return int(args.func(args, progress) or 0)
    except PpevalError as exc:
        print(f"ppeval {args.command}: {_safe(redact, str(exc))}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("ppeval: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("ppeval: terminated", file=sys.stderr)
        return 143
    except MemoryError:
        print(f"ppeval {args.command}: {_out_of_memory_text(progress.stage)}", file=sys.stderr)
        return INTERNAL_ERROR
    except OSError as exc:
        # a file that cannot be written or read (permissions, a full disk): not a bug
        where = f" {exc.filename}" if exc.filename else ""
        print(f"ppeval {args.command}: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if _Terminated.requested:
            print("ppeval: terminated", file=sys.stderr)
            return 143
        if os.environ.get("PPEVAL_DEBUG"):
            raise
        # No traceback: it can quote data values, and the message is what a user can act on.
        detail = _safe(redact, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        print(
            f"ppeval {args.command}: unexpected error ({type(exc).__name__}{': ' + detail if detail else ''}); "
            "this is a bug in ppeval: please report it (set PPEVAL_DEBUG=1 to see where it happened)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR
    finally:
        if previous_term is not None:
            import signal

            signal.signal(signal.SIGTERM, previous_term)


def _out_of_memory_text(stage: str | None) -> str:
    """What ran out of memory, and the option that helps with it.

    The DuckDB engine helps only while the extract is read (it keeps one file in memory at a
    time); a later stage (matching, estimating, writing) holds the cohort, not the files.

    Examples
    --------
    >>> _out_of_memory_text("matching")
    'out of memory while matching (after the extract was read): use a machine with more memory, or a smaller cohort (a shorter entry window)'
    """
    if stage is None or stage.startswith("loading"):
        return (f"out of memory while {stage or 'reading the config and the extract'}; for a large extract set "
                "[data] engine = \"duckdb\" (it keeps one file in memory at a time), or use a machine with more memory")
    if stage.startswith("generating"):
        return f"out of memory while {stage}: ask for fewer children, or use a machine with more memory"
    if stage.startswith("loaded"):
        stage = "validating the extract"
    return (f"out of memory while {stage} (after the extract was read): use a machine with more memory, "
            "or a smaller cohort (a shorter entry window)")


class _Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that every ``finally`` and clean-up runs."""

    # set by the handler: raised inside a C extension's import, the exception arrives
    # re-wrapped (ImportError), and must still end the run as a termination, not a bug
    requested = False


def _terminate_like_interrupt():
    """Let SIGTERM unwind the run as SIGINT does (temporary output folders removed)."""
    import signal

    def handler(signum, frame) -> None:  # noqa: ARG001
        _Terminated.requested = True
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler) or signal.SIG_DFL
    except ValueError:  # not the main thread (main() called from a worker): leave it alone
        return None


def _safe(redact: _Redactor, text: str, limit: int = 2000) -> str:
    """A message with the extract's identifiers replaced, cut to ``limit`` characters."""
    try:
        text = redact(text)
    except Exception:  # the guard itself failed: show no detail rather than risk an id
        return "(details withheld)"
    return text if len(text) <= limit else text[:limit] + "..."


def _warning_printer(redact: _Redactor) -> Callable[..., None]:
    """``warnings.showwarning`` for the command line: one line, identifiers redacted."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{lineno}"
        text = _safe(redact, str(message).strip().splitlines()[0] if str(message).strip() else "", 500)
        print(f"ppeval: warning: {category.__name__}: {text} ({where})", file=sys.stderr, flush=True)

    return show


if __name__ == "__main__":
    sys.exit(main())
