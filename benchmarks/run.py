"""The benchmark suite: every stage of an evaluation, and the whole ``ppeval report``, timed.

One entry point for the scale benchmarks. For each size it

1. generates (once, then cached under ``benchmarks/cache/``, git-ignored) a synthetic
   extract of that many children in the federal layouts with
   :func:`ppeval.synthetic.write_synthetic` (the code behind ``ppeval synth``): legacy
   AFCARS semi-annual files FY2010A–FY2024A, NCANDS child files FY2010–FY2024, the program
   roster, the family crosswalk and ``eval.toml``;
2. runs the stages one after another in a fresh Python process — load, validate, cohort,
   propensity, matching, balance, estimates, report — through
   :class:`ppeval.evaluation.Evaluation` (what ``ppeval report`` runs), recording each
   stage's wall time, CPU time and peak resident memory (a sampler thread reads
   ``/proc/self/statm`` every 20 ms; the process's ``ru_maxrss`` is the overall peak);
3. runs the whole ``ppeval report CONFIG --out DIR`` as a subprocess and takes its wall
   time and peak memory from ``wait4`` (``ru_maxrss`` of that process);
4. optionally (``--engines``) loads the extract with the pandas and the DuckDB engine, and
   (``--simulation``) times the simulation study with 1 and 2 joblib workers;
5. writes ``benchmarks/results/suite.json`` (figures per size, merged with those of earlier
   runs at other sizes) and prints a table.

The load average is recorded around each part: the machine is shared, and a busy
neighbour slows every figure.

Usage::

    python benchmarks/run.py                            # 100,000 and 1,000,000 children
    python benchmarks/run.py --sizes 100000             # one size
    python benchmarks/run.py --quick                    # 3,000 children, seconds (a smoke run)
    python benchmarks/run.py --sizes 1000000 --skip-stages   # only the whole `ppeval report`
    python benchmarks/run.py --sizes 100000 --simulation     # and the simulation study, 1 vs 2 workers
    python benchmarks/run.py --sizes 1000000 --engines --skip-stages --skip-cli   # pandas vs DuckDB loading

Examples
--------
>>> from benchmarks.run import format_table                      # doctest: +SKIP
>>> print(format_table(json.loads(Path("benchmarks/results/suite.json").read_text())))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache"
RESULTS = HERE / "results"
SEED = 20240601
DEFAULT_SIZES = (100_000, 1_000_000)
QUICK_SIZE = 3_000
#: The issue's targets (the whole report at 1,000,000 children) and the stages' own
#: targets from their issues (load: 40 AFCARS files of 1M children; cohort: 1M children).
TARGETS: dict[str, dict[str, float]] = {
    "ppeval report": {"seconds": 90.0, "peak_gib": 6.0},
    "load": {"seconds": 30.0, "peak_gib": 4.0},
    "cohort": {"seconds": 20.0},
}
TARGET_SIZE = 1_000_000
STAGES = ("load", "validate", "cohort", "propensity", "matching", "balance", "estimates", "report")
GIB = 2**30


# --------------------------------------------------------------------------- data
def cached_extract(n_children: int, seed: int = SEED, cache: Path = CACHE) -> Path:
    """The folder of a synthetic AFCARS/NCANDS extract of ``n_children`` (generated once).

    Parameters
    ----------
    n_children : int
        Children in the synthetic population.
    seed : int
        Generator seed.
    cache : Path
        Folder the extracts are kept in.

    Returns
    -------
    Path
        A folder holding ``eval.toml`` and the files it reads.

    Examples
    --------
    >>> folder = cached_extract(300, cache=Path(tempfile.mkdtemp()))   # doctest: +SKIP
    >>> (folder / "eval.toml").exists()                                # doctest: +SKIP
    True
    """
    folder = Path(cache) / f"synth_{n_children}_{seed}"
    done = folder / "done.json"
    if done.exists():
        return folder
    from ppeval.synthetic import write_synthetic

    t0 = time.perf_counter()
    # canonical=False: the canonical CSV copies are not read by eval.toml and would double
    # the disk used by the 1M extract
    write_synthetic(folder, n_children=n_children, seed=seed, canonical=False)
    files = [p for p in folder.rglob("*") if p.is_file()]
    done.write_text(json.dumps({
        "children": n_children, "seed": seed, "generate_seconds": round(time.perf_counter() - t0, 1),
        "files": len(files), "bytes": sum(p.stat().st_size for p in files),
    }) + "\n")
    return folder


def input_summary(folder: Path) -> dict[str, Any]:
    """Files and bytes read by the extract's ``eval.toml`` (AFCARS, NCANDS, agency files)."""
    out: dict[str, Any] = {}
    for name, pattern in (("afcars", "afcars/*"), ("ncands", "ncands/*"), ("agency", "*.csv")):
        files = sorted(folder.glob(pattern))
        out[f"{name}_files"] = len(files)
        out[f"{name}_bytes"] = sum(p.stat().st_size for p in files)
    out["total_bytes"] = out["afcars_bytes"] + out["ncands_bytes"] + out["agency_bytes"]
    return out


# --------------------------------------------------------------------------- memory
def _rss_bytes() -> int:
    """Current resident set size of this process (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _maxrss_bytes(ru_maxrss: int) -> int:
    # ru_maxrss is in KiB on Linux and in bytes on macOS
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024


class PeakSampler:
    """Samples this process's RSS in a background thread so each stage gets its own peak.

    ``ru_maxrss`` only ever grows, so it cannot tell a later, smaller stage's peak; the
    sampler's :meth:`reset` starts a new window. Peaks shorter than the interval can be
    missed, which is why the process's ``ru_maxrss`` is reported beside them.

    Examples
    --------
    >>> s = PeakSampler(0.01)
    >>> s.reset(); x = bytearray(50_000_000); time.sleep(0.05); s.peak() > 50_000_000
    True
    >>> s.stop()
    """

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self._peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = _rss_bytes()
            if rss > self._peak:
                self._peak = rss

    def reset(self) -> None:
        self._peak = _rss_bytes()

    def peak(self) -> int:
        return max(self._peak, _rss_bytes())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- the stages
def run_stages(config: Path, out: Path) -> dict[str, Any]:
    """Run every stage of the evaluation of ``config`` in this process, timing each.

    Each stage is an :class:`~ppeval.evaluation.Evaluation` property computed for the first
    time, so the figures are those of ``ppeval report`` split at the stage boundaries.

    Returns
    -------
    dict
        ``stages``: a list of ``{stage, seconds, cpu_seconds, peak_rss_bytes,
        rss_after_bytes}``; ``counts`` of the extract, cohort and matched sample;
        ``maxrss_bytes`` of the whole process.
    """
    from ppeval.evaluation import Evaluation
    from ppeval.report import write_report

    sampler = PeakSampler()
    ev = Evaluation.from_toml(config)
    steps = {
        "load": lambda: ev.extract,
        "validate": lambda: ev.validation,
        "cohort": lambda: ev.cohort,
        "propensity": lambda: ev.propensity_score,
        "matching": lambda: ev.matched,
        "balance": lambda: ev.balance,
        "estimates": lambda: ev.estimates,
        "report": lambda: write_report(ev, out),
    }
    rows = []
    for name in STAGES:
        sampler.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        error = None
        try:
            steps[name]()
        except Exception as exc:
            if name != "report":
                raise
            # the report's last step (the identifier scan) can refuse to publish; the work
            # before it has been done and timed, so the figures still stand, with the error
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        rows.append({
            "stage": name,
            "seconds": round(time.perf_counter() - t0, 3),
            "cpu_seconds": round(time.process_time() - c0, 3),
            "peak_rss_bytes": sampler.peak(),
            "rss_after_bytes": _rss_bytes(),
            **({"error": error} if error else {}),
        })
        if name == "validate" and ev.validation.has_errors:
            raise SystemExit(f"the benchmark extract failed validation: {ev.validation.summary()}")
    sampler.stop()
    ext, cohort, m = ev.extract, ev.cohort, ev.matched
    counts = {
        "children": len(ext.children), "episodes": len(ext.episodes), "reports": len(ext.reports),
        "participation": len(ext.participation), "cohort_units": len(cohort.data), "treated": int(cohort.n_treated),
        "treated_matched": int(m.counts.get("treated_matched", 0)),
    }
    return {
        "stages": rows,
        "counts": counts,
        "maxrss_bytes": _maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }


def run_cli_report(config: Path, out: Path) -> dict[str, Any]:
    """Time ``ppeval report CONFIG --out OUT`` as a subprocess: wall, CPU and peak memory.

    Peak memory is the ``ru_maxrss`` that ``wait4`` returns for that process, so it is
    the report's own, from interpreter start to exit.
    """
    exe = Path(sys.executable).with_name("ppeval")
    cmd = [str(exe), "report", str(config), "--out", str(out)] if exe.exists() else [
        sys.executable, "-m", "ppeval", "report", str(config), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait4 gives the resource usage of this one child (not of every child so far)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    out = {
        "stage": "ppeval report",
        "seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_bytes": _maxrss_bytes(usage.ru_maxrss),
        "exit_status": proc.returncode,
        "command": "ppeval report eval.toml --out DIR",
    }
    if proc.returncode != 0:
        # kept, not raised: a run that did all the work and then refused to publish still
        # has a wall time and a peak worth recording (the table marks it)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[")]
        out["error"] = (lines[0] if lines else err.strip()[-300:])[:300]
    return out


def _fresh_process_stages(config: Path, out: Path) -> dict[str, Any]:
    """:func:`run_stages` in a fresh interpreter (so its memory is not this process's)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--_stages", str(config), "--_out", str(out)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stage run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_with_engine(config: Path, engine: str) -> dict[str, Any]:
    """``load_extract`` with ``[data] engine = ENGINE`` in this process: time, peak, a digest.

    The digest (a hash of every row of children, episodes and reports) shows that the two
    engines gave the same tables without keeping both in memory.
    """
    import hashlib

    import pandas as pd

    from ppeval.config import Config
    from ppeval.load import load_extract

    cfg = Config.from_toml(config)
    cfg["data"]["engine"] = engine
    t0, c0 = time.perf_counter(), time.process_time()
    ext = load_extract(cfg)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    digest = hashlib.sha256()
    for name in ("children", "episodes", "reports"):
        digest.update(pd.util.hash_pandas_object(getattr(ext, name), index=False).to_numpy().tobytes())
    return {
        "engine": engine, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
        "peak_rss_bytes": _maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        "children": len(ext.children), "episodes": len(ext.episodes), "reports": len(ext.reports),
        "tables_sha256": digest.hexdigest(),
        "duckdb_memory_limit": os.environ.get("PPEVAL_DUCKDB_MEMORY_LIMIT", "2GB") if engine == "duckdb" else None,
    }


#: DuckDB's memory limit for the out-of-core run: far below the records it stacks (the
#: 1,000,000-child extract has 2.8 million AFCARS and 1.9 million NCANDS records).
LOW_DUCKDB_LIMIT = "200MB"


def compare_engines(config: Path) -> dict[str, Any]:
    """The pandas and the DuckDB engine loading the same extract, each in a fresh process.

    DuckDB runs twice: with its default memory limit, and with :data:`LOW_DUCKDB_LIMIT`,
    where it must move the records to disk to stack them.
    """
    out: dict[str, Any] = {}
    for key, engine, limit in (("pandas", "pandas", None), ("duckdb", "duckdb", None),
                               ("duckdb_low_memory", "duckdb", LOW_DUCKDB_LIMIT)):
        env = dict(os.environ)
        if limit:
            env["PPEVAL_DUCKDB_MEMORY_LIMIT"] = limit
        proc = subprocess.run([sys.executable, __file__, "--_load", engine, str(config)], capture_output=True,
                              text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"loading with {engine} failed:\n{proc.stderr[-3000:]}")
        out[key] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["same_tables"] = len({out[k]["tables_sha256"] for k in ("pandas", "duckdb", "duckdb_low_memory")}) == 1
    return out


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def measure(n_children: int, *, cache: Path = CACHE, seed: int = SEED, stages: bool = True, cli: bool = True,
            engines: bool = False) -> dict[str, Any]:
    """All figures for one size: the stages (one fresh process) and the whole CLI report.

    Examples
    --------
    >>> r = measure(2000, cache=Path(tempfile.mkdtemp()))       # doctest: +SKIP
    >>> [s["stage"] for s in r["stages"]][:3]                   # doctest: +SKIP
    ['load', 'validate', 'cohort']
    """
    folder = cached_extract(n_children, seed, cache)
    config = folder / "eval.toml"
    result: dict[str, Any] = {"children": n_children, "seed": seed, "inputs": input_summary(folder),
                              "generate": json.loads((folder / "done.json").read_text())}
    work = folder / "_out"
    # the machine is shared: each part keeps the load average (1, 5, 15 min) around it
    try:
        if stages:
            before = _load()
            result.update(_fresh_process_stages(config, work / "stages"))
            result["stages_load_average"] = {"before": before, "after": _load()}
        if cli:
            before = _load()
            result["report_cli"] = run_cli_report(config, work / "cli")
            result["report_cli"]["load_average"] = {"before": before, "after": _load()}
        if engines:
            before = _load()
            result["load_engines"] = compare_engines(config)
            result["load_engines"]["load_average"] = {"before": before, "after": _load()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if n_children == TARGET_SIZE and "report_cli" in result:
        t = TARGETS["ppeval report"]
        r = result["report_cli"]
        result["meets_target"] = bool(r["exit_status"] == 0 and r["seconds"] <= t["seconds"]
                                      and r["peak_rss_bytes"] <= t["peak_gib"] * GIB)
    return result


def simulation_timing(replicates: int = 20, children: int = 8000) -> dict[str, Any]:
    """Wall time of the simulation study (``benchmarks/simulate.py --timing``) with 1 and 2 workers.

    The replicates run through joblib (``Parallel(n_jobs=1)`` and ``n_jobs=2``); the study
    writes its own summary, kept here beside the timing.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "simulation.json"
        before = _load()
        subprocess.run([sys.executable, str(HERE / "simulate.py"), "--replicates", str(replicates), "--children",
                        str(children), "--timing", "--out", str(out)], check=True, capture_output=True, text=True)
        res = json.loads(out.read_text())
    wall = res["wall_seconds"]
    return {
        "replicates": replicates, "children": children, "wall_seconds": wall,
        "speedup_2_workers": round(wall["1_worker"] / wall["2_workers"], 2),
        "summary": res.get("summary"), "load_average_before": before, "load_average_after": _load(),
        "command": f"python benchmarks/simulate.py --replicates {replicates} --children {children} --timing",
    }


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    import ppeval

    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {
        "cpus": os.cpu_count(), "memory_gib": round(mem / GIB, 1), "machine": platform.machine(),
        "python": platform.python_version(), "ppeval": getattr(ppeval, "__version__", "?"),
        "numpy": np.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__,
    }


# --------------------------------------------------------------------------- output
def format_table(suite: dict[str, Any]) -> str:
    """The suite's figures as a Markdown table (one row per size and stage).

    Examples
    --------
    CPU time is shown beside the wall time: on a shared machine it moves much less with
    the neighbours' load.

    >>> suite = {"sizes": {"1000": {"children": 1000, "stages": [{"stage": "load", "seconds": 0.5,
    ...          "cpu_seconds": 0.4, "peak_rss_bytes": 2**29}], "report_cli": {"stage": "ppeval report",
    ...          "seconds": 3.0, "cpu_seconds": 2.5, "peak_rss_bytes": 2**30}}}}
    >>> print(format_table(suite))
    | children | stage | wall | CPU | peak memory | target |
    |---:|---|---:|---:|---:|---|
    | 1,000 | load | 0.50 s | 0.4 s | 0.50 GiB |  |
    | 1,000 | **ppeval report** (whole, subprocess) | **3.0 s** | 2.5 s | **1.00 GiB** |  |
    """
    lines = ["| children | stage | wall | CPU | peak memory | target |", "|---:|---|---:|---:|---:|---|"]
    for key in sorted(suite["sizes"], key=int):
        r = suite["sizes"][key]
        n = f"{r['children']:,}"
        for s in r.get("stages", []):
            t = TARGETS.get(s["stage"]) if r["children"] == TARGET_SIZE else None
            target = ", ".join(f"≤ {v:g} {'s' if k == 'seconds' else 'GiB'}" for k, v in (t or {}).items())
            flag = " (failed: see error)" if s.get("error") else ""
            lines.append(f"| {n} | {s['stage']}{flag} | {s['seconds']:.2f} s | {s.get('cpu_seconds', float('nan')):.1f} s "
                         f"| {s['peak_rss_bytes'] / GIB:.2f} GiB | {target} |")
        c = r.get("report_cli")
        if c:
            t = TARGETS["ppeval report"] if r["children"] == TARGET_SIZE else None
            target = f"≤ {t['seconds']:g} s, ≤ {t['peak_gib']:g} GiB" if t else ""
            flag = f" (exit {c['exit_status']})" if c.get("exit_status") else ""
            lines.append(f"| {n} | **ppeval report** (whole, subprocess){flag} | **{c['seconds']:.1f} s** | "
                         f"{c.get('cpu_seconds', float('nan')):.1f} s | **{c['peak_rss_bytes'] / GIB:.2f} GiB** | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES), help="children per extract, comma-separated")
    ap.add_argument("--quick", action="store_true", help=f"a smoke run at {QUICK_SIZE:,} children (written to suite_quick.json)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--cache", type=Path, default=CACHE, help="folder for the generated extracts")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/suite.json)")
    ap.add_argument("--skip-stages", action="store_true", help="only the whole `ppeval report`")
    ap.add_argument("--skip-cli", action="store_true", help="only the stages")
    ap.add_argument("--engines", action="store_true", help="also load each extract with the pandas and the DuckDB engine")
    ap.add_argument("--simulation", action="store_true",
                    help="also time the simulation study (20 replicates of 8,000 children) with 1 and 2 workers")
    ap.add_argument("--_stages", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_out", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_load", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._stages:  # the fresh process of _fresh_process_stages
        print(json.dumps(run_stages(args._stages, args._out)))
        return 0
    if args._load:  # the fresh process of compare_engines
        print(json.dumps(load_with_engine(Path(args._load[1]), args._load[0])))
        return 0
    sizes = [QUICK_SIZE] if args.quick else [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    out = args.out or RESULTS / ("suite_quick.json" if args.quick else "suite.json")
    suite: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    suite.setdefault("sizes", {})
    for n in sizes:
        print(f"{n:,} children ...", file=sys.stderr, flush=True)
        new = measure(n, cache=args.cache, seed=args.seed, stages=not args.skip_stages, cli=not args.skip_cli,
                      engines=args.engines)
        # merged into the size's earlier figures: --skip-stages keeps the stages measured before
        suite["sizes"][str(n)] = {**suite["sizes"].get(str(n), {}), **new}
        suite["machine"] = machine()
        suite["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(suite, indent=2) + "\n")  # after each size: a long run keeps what it has
    if args.simulation:
        print("simulation study, 1 and 2 workers ...", file=sys.stderr, flush=True)
        suite["simulation"] = simulation_timing()
        out.write_text(json.dumps(suite, indent=2) + "\n")
    print(format_table(suite))
    for key in sorted(suite["sizes"], key=int):
        e = suite["sizes"][key].get("load_engines")
        if e:
            low = e.get("duckdb_low_memory")
            extra = (f"; duckdb under {low['duckdb_memory_limit']} {low['seconds']} s, "
                     f"{low['peak_rss_bytes'] / GIB:.2f} GiB") if low else ""
            print(f"\nload_extract at {int(key):,} children: pandas {e['pandas']['seconds']} s, "
                  f"{e['pandas']['peak_rss_bytes'] / GIB:.2f} GiB; duckdb {e['duckdb']['seconds']} s, "
                  f"{e['duckdb']['peak_rss_bytes'] / GIB:.2f} GiB{extra}; same tables: {e['same_tables']}")
    if "simulation" in suite:
        w = suite["simulation"]["wall_seconds"]
        print(f"\nsimulation study ({suite['simulation']['replicates']} replicates of "
              f"{suite['simulation']['children']:,} children): 1 worker {w['1_worker']} s, 2 workers {w['2_workers']} s")
    return 0


if __name__ == "__main__":
    # run as a script: the package is importable from the venv, this folder is not a package
    sys.exit(main())
