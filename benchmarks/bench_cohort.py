"""Benchmark: build the cohort and every outcome for a 1,000,000-child extract (target ≤ 20 s).

The extract is simulated once with :func:`ppeval.synthetic.generate` and cached as Parquet
under ``benchmarks/cache/`` (git-ignored); the timed step is :func:`ppeval.build_cohort`
(in-care design, entry window 2016–2021, child unit, all outcomes with their windows),
run in a fresh process so that peak memory (ru_maxrss) is the cohort step's own.

Usage::

    python benchmarks/bench_cohort.py --children 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
CACHE = HERE / "cache"
RESULTS = HERE / "results"
TABLES = ("children", "episodes", "reports", "participation", "families")


def cached_extract(n_children: int, seed: int = 7) -> Path:
    """Folder of Parquet canonical tables for ``n_children`` (generated once)."""
    folder = CACHE / f"canonical_{n_children}_{seed}"
    if not (folder / "done").exists():
        from ppeval.synthetic import generate

        syn = generate(n_children, seed=seed)
        folder.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            getattr(syn, name).to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "extract_date").write_text(str(syn.extract_date.date()))
        (folder / "done").write_text("ok")
    return folder


def _time_cohort(folder: Path) -> dict:
    import pandas as pd

    from ppeval.cohort import build_cohort
    from ppeval.extract import Extract

    tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    ext = Extract(tables, (folder / "extract_date").read_text())
    t0 = time.perf_counter()
    cohort = build_cohort(ext, entry_from="2016-01-01", entry_to="2021-12-31")
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "episodes": len(ext.episodes),
        "units": len(cohort.data),
        "treated": cohort.n_treated,
    }


def measure(n_children: int) -> dict:
    folder = cached_extract(n_children)
    out = subprocess.run([sys.executable, __file__, "--child", str(folder)], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["children"] = n_children
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--children", type=int, default=1_000_000)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_time_cohort(Path(args.child))))
        return 0
    res = measure(args.children)
    print(json.dumps(res, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cohort.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
