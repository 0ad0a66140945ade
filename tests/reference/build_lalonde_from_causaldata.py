"""Rebuild MatchIt's ``lalonde`` (614 rows) from the PyPI package causaldata.

causaldata has no single object equal to MatchIt's lalonde: the 185 treated
rows are ``nsw_mixtape`` rows with treat == 1 (same order), and the 429
controls (MatchIt row names PSID1..PSID429) are scattered rows of
``cps_mixtape``, listed in lalonde_causaldata_rows.json (written by
lalonde_causaldata_rows.R).

Recode: black/hisp -> race ("black", "hispan", "white"), marr -> married,
drop data_id; the float32 earnings are turned into float64 through their
shortest float32 repr (``astype(str).astype(float)``), which gives exactly
MatchIt's doubles (a plain ``astype(float)`` does not: 9930.046 becomes
9930.0458984375).

Run as a script to check the result against lalonde.csv (written from R).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def _recode(d: pd.DataFrame) -> pd.DataFrame:
    race = np.where(d["black"] == 1, "black", np.where(d["hisp"] == 1, "hispan", "white"))
    out = pd.DataFrame({
        "treat": d["treat"].astype(int),
        "age": d["age"].astype(int),
        "educ": d["educ"].astype(int),
        "race": race,
        "married": d["marr"].astype(int),
        "nodegree": d["nodegree"].astype(int),
    })
    for v in ("re74", "re75", "re78"):
        out[v] = d[v].astype(str).astype(float)
    return out


def load_lalonde() -> pd.DataFrame:
    from causaldata import cps_mixtape, nsw_mixtape

    rows = json.loads((HERE / "lalonde_causaldata_rows.json").read_text())
    nsw = nsw_mixtape.load_pandas().data
    cps = cps_mixtape.load_pandas().data
    treated = nsw.iloc[rows["nsw_mixtape_treated_rows_0based"]]
    controls = cps.iloc[rows["cps_mixtape_rows_0based"]]
    out = pd.concat([_recode(treated), _recode(controls)], ignore_index=True)
    out.index = [f"NSW{i}" for i in range(1, 186)] + [f"PSID{i}" for i in range(1, 430)]
    return out


if __name__ == "__main__":
    built = load_lalonde()
    ref = pd.read_csv(HERE / "lalonde.csv")
    ref.index = ref.pop("rowname")
    ref = ref.drop(columns="row")
    assert list(built.columns) == list(ref.columns)
    assert list(built.index) == list(ref.index)
    for c in ref.columns:
        same = (built[c].to_numpy() == ref[c].to_numpy()).all()
        print(f"{c:9s} identical: {same}")
        assert same, c
    print("causaldata rebuild == MatchIt lalonde (614 rows, exact)")
