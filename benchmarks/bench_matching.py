"""Benchmark: nearest-neighbour propensity matching at scale, and causalml for comparison.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_matching.py            # full sizes
    /work/venv/bin/python benchmarks/bench_matching.py --quick    # small sizes

The main case is 100,000 treated x 1,000,000 comparison units, 1:1, caliper 0.2 SD of the
logit, without replacement. Timings are wall-clock seconds of ``ppeval.match()`` end to end
(sorting, the compiled scan, weights, and building the matched DataFrames), after the
numba functions are compiled; the compile time is measured separately by compiling fresh
copies of the functions with caching off. causalml's ``NearestNeighborMatch`` (a
benchmark-only extra: ``pip install causalml``) is timed at 100,000 rows with the same
settings, and ppeval on the same 100,000 rows beside it.

Results go to ``benchmarks/results/matching.json``; the table printed at the end is the one
in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def make_data(n_treated: int, n_controls: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Logits: comparison N(0, 1), treated N(0.3, 1); two covariates for realism."""
    rng = np.random.default_rng(seed)
    n = n_treated + n_controls
    logit = np.r_[rng.normal(0.3, 1.0, n_treated), rng.normal(0.0, 1.0, n_controls)]
    df = pd.DataFrame({
        "treated": np.r_[np.ones(n_treated, np.int8), np.zeros(n_controls, np.int8)],
        "x1": rng.normal(size=n),
        "x2": rng.integers(0, 5, n),
    })
    perm = rng.permutation(n)  # arms interleaved, as in real data
    return df.iloc[perm].reset_index(drop=True), logit[perm]


def time_ppeval(n_treated: int, n_controls: int, repeats: int = 5, seed: int = 0,
                ratio: int = 1, caliper_sd: float | None = 0.2) -> dict:
    from ppeval.matching import match
    from ppeval.propensity import PropensityScore

    df, logit = make_data(n_treated, n_controls, seed)
    ps = PropensityScore.from_logit(df, "treated", logit, ["x1", "x2"])
    t0 = time.perf_counter()
    m = match(ps, ratio=ratio, caliper_sd=caliper_sd)  # first call: compile or cache load
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        m = match(ps, ratio=ratio, caliper_sd=caliper_sd, replace=False)
        times.append(time.perf_counter() - t0)
    return {
        "tool": "ppeval",
        "n_treated": n_treated,
        "n_controls": n_controls,
        "ratio": ratio,
        "caliper_sd": caliper_sd,
        "replace": False,
        "first_call_seconds": first,
        "seconds": times,
        "seconds_best": min(times),
        "seconds_median": statistics.median(times),
        "treated_matched": m.counts["treated_matched"],
        "comparison_matched": m.counts["comparison_matched"],
    }


def compile_seconds() -> float:
    """Compile fresh (uncached) copies of the numba functions on a tiny input."""
    from numba import njit

    import ppeval.matching as mod

    find = njit(cache=False)(mod._find.py_func)
    scan_src = mod._nn_scan.py_func
    why_src = mod._why_unmatched.py_func
    # The scan calls _find through the module globals; point them at the fresh copy.
    g = dict(scan_src.__globals__, _find=find)
    import types

    scan = njit(cache=False)(types.FunctionType(scan_src.__code__, g, "_nn_scan_fresh"))
    why = njit(cache=False)(types.FunctionType(why_src.__code__, dict(why_src.__globals__),
                                               "_why_fresh"))
    c = np.array([0.0, 1.0])
    t0 = time.perf_counter()
    scan(c, np.zeros(2), np.array([0.5]), np.array([1], np.int64), np.array([0], np.int64),
         np.array([2], np.int64), np.zeros(1), np.ones(1, np.bool_), np.array([0], np.int64),
         np.array([1], np.int64), 1, np.inf, False, False, 0.0)
    why(c, np.zeros(2), np.array([0.5]), np.array([0], np.int64), np.array([2], np.int64),
        np.zeros(1), np.array([0], np.int64), 1.0, False)
    return time.perf_counter() - t0


def time_causalml(n_rows: int = 100_000, seed: int = 0, treated_share: float = 1 / 11) -> dict:
    """causalml's NearestNeighborMatch, 1:1, caliper 0.2 SD of the logit, no replacement."""
    try:
        from importlib.metadata import version

        from causalml.match import NearestNeighborMatch
    except Exception as exc:  # noqa: BLE001 - report any import failure verbatim
        return {"tool": "causalml", "error": f"{type(exc).__name__}: {exc}"}
    n_t = round(n_rows * treated_share)
    df, logit = make_data(n_t, n_rows - n_t, seed)
    df["logit"] = logit
    nn = NearestNeighborMatch(caliper=0.2, replace=False, ratio=1, shuffle=True,
                              random_state=seed)
    t0 = time.perf_counter()
    matched = nn.match(data=df, treatment_col="treated", score_cols=["logit"])
    secs = time.perf_counter() - t0
    return {
        "tool": "causalml",
        "version": version("causalml"),
        "n_treated": n_t,
        "n_controls": n_rows - n_t,
        "seconds": secs,
        "treated_matched": int((matched["treated"] == 1).sum()),
        "note": "caliper = 0.2 x SD of the given score column (here the logit, np.std ddof=0)",
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--no-causalml", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "matching.json"))
    args = ap.parse_args(argv)
    big = (2_000, 20_000) if args.quick else (100_000, 1_000_000)
    mid_rows = 10_000 if args.quick else 100_000

    comp = compile_seconds()
    res_big = time_ppeval(*big, repeats=5)
    n_t_mid = round(mid_rows / 11)
    res_mid = time_ppeval(n_t_mid, mid_rows - n_t_mid, repeats=5)
    res_cml = None if args.no_causalml else time_causalml(mid_rows)
    import numba

    out = {
        "benchmark": "nearest-neighbour matching on the logit, 1:1, caliper 0.2 SD, no replacement",
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "pandas": pd.__version__,
        },
        "numba_compile_seconds": comp,
        "ppeval_large": res_big,
        "ppeval_100k_rows": res_mid,
        "causalml_100k_rows": res_cml,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))

    rows = [
        ("ppeval `match()`", res_big, f"{res_big['seconds_best']:.2f} s (median {res_big['seconds_median']:.2f} s)"),
        ("ppeval `match()`", res_mid, f"{res_mid['seconds_best']:.3f} s (median {res_mid['seconds_median']:.3f} s)"),
    ]
    if res_cml is not None:
        if "error" in res_cml:
            rows.append(("causalml `NearestNeighborMatch`", None, f"not run: {res_cml['error']}"))
        else:
            rows.append((f"causalml {res_cml['version']} `NearestNeighborMatch`", res_cml,
                         f"{res_cml['seconds']:.1f} s"))
    print("| tool | treated | comparison | treated matched | time |")
    print("|---|---:|---:|---:|---:|")
    for name, r, t in rows:
        if r is None:
            print(f"| {name} | | | | {t} |")
        else:
            print(f"| {name} | {r['n_treated']:,} | {r['n_controls']:,} | "
                  f"{r['treated_matched']:,} | {t} |")
    print(f"\nnumba compile time (once per installation; cached afterwards): {comp:.2f} s")
    print(f"first call in a fresh process (cache load): {res_big['first_call_seconds']:.2f} s")
    return out


if __name__ == "__main__":
    main()
