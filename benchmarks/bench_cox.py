"""Benchmark: Cox model with cluster-robust SEs by matched pair, ppeval vs lifelines.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_cox.py            # 200,000 rows; lifelines at 64,000
    /work/venv/bin/python benchmarks/bench_cox.py --quick    # small sizes

Data: 1:1 matched pairs (cluster = pair), one covariate (treatment), integer-day times
(exponential event times with means 500 and 350 days, uniform censoring between 30 and
1,500 days), so about 1,400 distinct event days and heavy ties.  ``ppeval`` is timed end to
end for ``CoxPH().fit_arrays(...)``: Efron ties, Newton–Raphson to convergence, score
residuals and the clustered sandwich, best of ``--repeat`` runs.  lifelines'
``CoxPHFitter().fit(..., cluster_col="pair")`` is timed once at 64,000 rows (its robust
variance loops over rows in Python, O(n^2)); ppeval runs on the same 64,000 rows beside it,
and the SEs of both are recorded (lifelines' ignores ties, so it differs from R's coxph).

Results go to ``benchmarks/results/cox.json``; the printed table is the one in
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def make_data(n: int, seed: int = 1) -> pd.DataFrame:
    """n rows in n/2 pairs (treated, comparison), integer days with heavy ties."""
    rng = np.random.default_rng(seed)
    treated = (np.arange(n) % 2 == 0).astype(float)
    T = np.ceil(rng.exponential(np.where(treated == 1, 500.0, 350.0)))
    C = rng.integers(30, 1500, n)
    return pd.DataFrame({"days": np.minimum(T, C), "event": (T <= C).astype(int),
                         "treated": treated, "pair": np.arange(n) // 2})


def time_ppeval(df: pd.DataFrame, repeat: int = 3) -> dict:
    from ppeval.estimate import CoxPH

    X = df[["treated"]].to_numpy()
    args = (X, df["days"].to_numpy(float), df["event"].to_numpy() == 1)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fit = CoxPH().fit_arrays(*args, cluster=df["pair"].to_numpy(), names=["treated"])
        times.append(time.perf_counter() - t0)
    return {"tool": "ppeval CoxPH (cluster = pair)", "n": len(df), "seconds": min(times),
            "seconds_all": times, "coef": float(fit.params_["treated"]),
            "se_robust": float(fit.se_["treated"]), "iterations": fit.iterations_}


def time_lifelines(df: pd.DataFrame) -> dict:
    import lifelines
    from lifelines import CoxPHFitter

    t0 = time.perf_counter()
    fit = CoxPHFitter().fit(df[["days", "event", "treated", "pair"]], "days", "event",
                            cluster_col="pair")
    secs = time.perf_counter() - t0
    return {"tool": f"lifelines {lifelines.__version__} CoxPHFitter (cluster_col = pair)",
            "n": len(df), "seconds": secs, "coef": float(fit.params_["treated"]),
            "se_robust": float(fit.standard_errors_["treated"])}


def run(n: int = 200_000, n_lifelines: int = 64_000, repeat: int = 3,
        skip_lifelines: bool = False) -> dict:
    big = make_data(n)
    rows = [time_ppeval(big, repeat)]
    rows[0]["distinct_event_days"] = int(big.loc[big.event == 1, "days"].nunique())
    if n_lifelines:
        small = make_data(n_lifelines)
        rows.append(time_ppeval(small, repeat))
        if not skip_lifelines:
            rows.append(time_lifelines(small))
    return {
        "benchmark": "Cox PH, 1 covariate (treatment), integer days, clusters = 1:1 pairs",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "platform": platform.platform()},
        "target_seconds_at_200k": 3.0,
        "rows": rows,
    }


def table(result: dict) -> str:
    lines = ["| tool | rows | time | log HR | robust SE |", "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['tool']} | {r['n']:,} | {r['seconds']:.2f} s | "
                     f"{r['coef']:.6f} | {r['se_robust']:.8f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--lifelines-n", type=int, default=64_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-lifelines", action="store_true")
    ap.add_argument("--quick", action="store_true", help="20,000 rows; lifelines at 4,000")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "cox.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.lifelines_n = 20_000, 4_000
    result = run(a.n, a.lifelines_n, a.repeat, a.skip_lifelines)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
