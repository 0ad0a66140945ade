"""Simulation study: bias and coverage of ppeval's matched estimates against the generator's truth.

Each replicate draws a synthetic statewide extract with a known program effect
(:func:`ppeval.synthetic.generate`), runs the whole pipeline — cohort with enrolment-indexed
comparisons, logistic propensity score, 1:1 nearest-neighbour matching on the logit with a
0.2 SD caliper, siblings matched together, risk-set eligibility — and estimates the risk
difference for reunification within 12 months and TPR within 24 months with cluster-robust
95% CIs. The truth is the generator's effect on the treated, from both potential outcomes of
every treated unit (``truth.json``: ``true_effects``).

Replicates run in parallel through joblib (all local cores by default; ``--dask ADDRESS``
uses a Dask cluster through joblib's dask backend).

Usage::

    python benchmarks/simulate.py --replicates 200 --children 8000 --jobs 2
    python benchmarks/simulate.py --replicates 20 --timing      # wall time with 1 and 2 workers

Writes ``benchmarks/results/simulation.json`` (per-replicate rows and the summary table).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

OUTCOMES = {"reunified_12m": ("reunification", 12), "tpr_24m": ("tpr", 24)}
COVARIATES = ["age_at_removal", "age_group", "removal_parent_drugs", "removal_parent_alcohol", "removal_parent_incarceration",
              "removal_inadequate_housing", "removal_neglect", "removal_physical_abuse", "prior_removals", "county", "entry_year"]
RESULTS = Path(__file__).parent / "results"


def _pool_rare_levels(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Merge levels seen in one arm only into the most common level (as the Evaluation does).

    In a small replicate a county whose program started late can have no served unit;
    its logistic coefficient would be infinite (separation).
    """
    df = df.copy()
    arm = df["treated"].astype(bool)
    for col in columns:
        key = df[col].astype("string")
        tab = pd.crosstab(key, arm)
        for a in (True, False):
            if a not in tab:
                tab[a] = 0
        one_armed = tab.index[(tab[True] == 0) | (tab[False] == 0)]
        if len(one_armed):
            df[col] = key.where(~key.isin(one_armed), str(tab.sum(axis=1).idxmax()))
    return df


def _truth_matched(syn, matched: pd.DataFrame) -> dict[str, float]:
    """The effect on the *matched* treated units (a caliper leaves a few treated units out),
    from both potential worlds of each of them, as ``truth.json`` computes it for all."""
    pot = syn.potential[syn.potential["treated"]]
    t = matched[matched["treated"].astype(bool)]
    key = pd.MultiIndex.from_arrays([t["child_id"].astype(str), pd.to_datetime(t["anchor_date"])])
    p = pot.set_index([pot["child_id"].astype(str), pd.to_datetime(pot["removal_date"])])
    p = p[p.index.isin(key)]
    e = p["enrolled_date"]
    out = {}
    w12 = e + pd.Timedelta(days=365) <= syn.extract_date
    r = [((p[f"discharge_reason_{w}"] == "reunification") & ((p[f"discharge_date_{w}"] - e).dt.days <= 365))[w12] for w in (0, 1)]
    out["reunified_12m"] = float(r[1].mean() - r[0].mean())
    w24 = e + pd.Timedelta(days=730) <= syn.extract_date
    r = [((p[f"tpr_date_{w}"] - e).dt.days <= 730)[w24] for w in (0, 1)]
    out["tpr_24m"] = float(r[1].mean() - r[0].mean())
    return out


def _row(common: dict, estimator: str, e, truth: float, truth_matched: float) -> dict:
    """One estimate of one replicate, with whether its CI covers each truth."""
    return {**common, "estimator": estimator, "estimate": e.estimate, "se": e.se, "ci_low": e.ci_low,
            "ci_high": e.ci_high, "truth": truth, "covered": bool(e.ci_low <= truth <= e.ci_high),
            "truth_matched": truth_matched, "covered_matched": bool(e.ci_low <= truth_matched <= e.ci_high)}


def replicate(seed: int, n_children: int) -> list[dict]:
    """One replicate: generate, build the cohort, match, estimate; one row per outcome."""
    from ppeval.cohort import build_cohort
    from ppeval.estimate import estimate
    from ppeval.matching import match
    from ppeval.propensity import propensity
    from ppeval.synthetic import generate

    syn = generate(n_children, seed=seed)
    cohort = build_cohort(syn.to_extract(), entry_from="2016-01-01", entry_to="2021-12-31", outcomes={"reunification": [12], "tpr": [24]})
    data = cohort.data.assign(
        # infants and teenagers differ in both uptake and outcomes: a step the linear age term misses
        age_group=pd.cut(cohort.data["age_at_removal"], [-1, 1, 6, 13, 99], right=False, labels=["under 1", "1-5", "6-12", "13+"]).astype(str)
    )
    data = _pool_rare_levels(data, ("county", "entry_year", "age_group"))
    covariates = [c for c in COVARIATES if data[c].nunique() > 1]
    ps = propensity(data, "treated", covariates, categorical=[c for c in ("county", "entry_year", "age_group") if c in covariates])
    m = match(ps, caliper_sd=0.2, exact=["entry_year"], cluster="match_family", delay="index_delay_days",
              eligible_until="eligible_until_days", reindex=cohort.reindex)
    rows = []
    matched_truth = _truth_matched(syn, m.data)
    for column, (outcome, months) in OUTCOMES.items():
        res = estimate(m, outcome=outcome)
        e = res["risk_difference", months]
        truth = syn.truth["true_effects"][column]["risk_difference"]
        tm = matched_truth[column]
        common = {"seed": seed, "outcome": column, "n_treated_matched": int(m.counts.get("treated_matched", 0))}
        rows.append(_row(common, "window risk difference (IPCW)", e, truth, tm))
        # the same quantity from the cumulative-incidence curves (comparison rows censored at
        # their enrolment, not weighted): how far the unweighted curves are off
        aj = [x for x in res.secondary if x.measure == "cumulative_incidence_difference" and x.window_months == months]
        if aj:
            rows.append(_row(common, "Aalen-Johansen difference", aj[0], truth, tm))
    return rows


def run(replicates: int, n_children: int, n_jobs: int, seed0: int = 1000, dask: str | None = None) -> pd.DataFrame:
    """Run the replicates in parallel (joblib; a Dask cluster when ``dask`` is its address)."""
    from joblib import Parallel, delayed, parallel_backend

    seeds = [seed0 + i for i in range(replicates)]
    if dask:
        from dask.distributed import Client

        client = Client(dask)
        with parallel_backend("dask", client=client):
            out = Parallel()(delayed(replicate)(s, n_children) for s in seeds)
    else:
        out = Parallel(n_jobs=n_jobs)(delayed(replicate)(s, n_children) for s in seeds)
    return pd.DataFrame([r for rows in out for r in rows])


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["outcome", "estimator"])
    return pd.DataFrame({
        "replicates": g.size(),
        "mean_truth": g["truth"].mean(),
        "mean_estimate": g["estimate"].mean(),
        "bias": g.apply(lambda x: (x["estimate"] - x["truth"]).mean(), include_groups=False),
        "empirical_se": g["estimate"].std(),
        "mean_model_se": g["se"].mean(),
        "coverage_95": g["covered"].mean(),
        "mean_truth_matched": g["truth_matched"].mean(),
        "bias_matched": g.apply(lambda x: (x["estimate"] - x["truth_matched"]).mean(), include_groups=False),
        "coverage_95_matched": g["covered_matched"].mean(),
    }).reset_index()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicates", type=int, default=200)
    p.add_argument("--children", type=int, default=8000)
    p.add_argument("--jobs", type=int, default=-1, help="joblib workers (-1 = all cores)")
    p.add_argument("--dask", default=None, help="address of a Dask scheduler (joblib's dask backend)")
    p.add_argument("--timing", action="store_true", help="time the replicates with 1 and with 2 workers")
    p.add_argument("--out", default=str(RESULTS / "simulation.json"))
    args = p.parse_args(argv)
    result: dict = {"children": args.children, "replicates": args.replicates}
    if args.timing:
        timing = {}
        for jobs in (1, 2):
            t0 = time.perf_counter()
            run(args.replicates, args.children, jobs)
            timing[f"{jobs}_worker{'s' if jobs > 1 else ''}"] = round(time.perf_counter() - t0, 1)
            print(f"{args.replicates} replicates with {jobs} worker(s): {timing[list(timing)[-1]]} s", flush=True)
        result["wall_seconds"] = timing
    t0 = time.perf_counter()
    df = run(args.replicates, args.children, args.jobs, dask=args.dask)
    result["wall_seconds_run"] = round(time.perf_counter() - t0, 1)
    table = summarise(df)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    result["summary"] = json.loads(table.to_json(orient="records"))
    result["replicate_rows"] = json.loads(df.to_json(orient="records"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
