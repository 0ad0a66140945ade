"""Output files are what their names say (.csv, .parquet, .xlsx; anything else refused), object
displays count what they say, and no message shows a NumPy repr (``np.int64(...)``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.cli import main
from ppeval.extract import Extract
from ppeval.load import load_extract
from ppeval.synthetic import write_synthetic

NUMPY_REPR = re.compile(r"\bnp\.(?:u?int|float|bool|str|datetime|timedelta|complex)\w*\(")


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synth") / "s", n_children=600, seed=12)


@pytest.fixture(scope="module")
def cohort_csv(synth, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("csv") / "coh.csv"
    assert main(["-q", "cohort", str(synth / "eval.toml"), "--out", str(out)]) == 0
    return pd.read_csv(out, dtype=str, keep_default_na=False)


def _assert_same_values(xl: pd.Series, csv: pd.Series) -> None:
    """One column read back from Excel against the same column read from the CSV as text."""
    filled = csv != ""
    if set(csv[filled]) <= {"True", "False"} and filled.any():
        # yes/no cells: Excel booleans (pandas reads them as 1.0/0.0 beside blanks)
        expected = csv.map({"True": 1.0, "False": 0.0, "": np.nan}).to_numpy(dtype=float)
        assert np.array_equal(xl.astype(float).to_numpy(), expected, equal_nan=True), csv.name
        return
    num = pd.to_numeric(csv, errors="coerce")
    if filled.any() and num[filled].notna().all():
        assert np.allclose(xl.astype(float).to_numpy(), num.to_numpy(dtype=float), equal_nan=True), csv.name
        return
    if pd.api.types.is_datetime64_any_dtype(xl):
        got = xl.dt.strftime("%Y-%m-%d").fillna("")
    else:
        got = xl.astype(object).where(xl.notna(), "").astype(str)
    assert got.tolist() == csv.tolist(), csv.name


def test_cohort_xlsx_is_a_workbook_equal_to_the_csv(synth, cohort_csv, tmp_path):
    pytest.importorskip("openpyxl")
    out = tmp_path / "coh.xlsx"
    assert main(["-q", "cohort", str(synth / "eval.toml"), "--out", str(out)]) == 0
    assert out.read_bytes()[:2] == b"PK"  # a zip (Office Open XML), not CSV text
    xl = pd.read_excel(out)
    assert list(xl.columns) == list(cohort_csv.columns) and len(xl) == len(cohort_csv) > 100
    assert pd.api.types.is_datetime64_any_dtype(xl["anchor_date"])  # dates are date cells, not text
    for c in cohort_csv.columns:
        _assert_same_values(xl[c], cohort_csv[c])


def test_cohort_parquet_is_parquet_equal_to_the_csv(synth, cohort_csv, tmp_path):
    out = tmp_path / "coh.parquet"
    assert main(["-q", "cohort", str(synth / "eval.toml"), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"PAR1"
    pq = pd.read_parquet(out)
    assert list(pq.columns) == list(cohort_csv.columns) and len(pq) == len(cohort_csv)
    assert pq["anchor_date"].dt.strftime("%Y-%m-%d").tolist() == cohort_csv["anchor_date"].tolist()


@pytest.mark.parametrize("name", ["coh.txt", "coh.xls", "coh", "coh.json"])
def test_an_unknown_suffix_is_refused_before_any_work(tmp_path, capsys, name):
    out = tmp_path / name
    # the config does not exist: the suffix is refused first, so the check costs nothing
    assert main(["-q", "cohort", str(tmp_path / "nope.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert ".csv, .parquet or .xlsx" in err and not out.exists()
    assert main(["-q", "indicators", str(tmp_path / "nope.toml"), "--out", str(out)]) == 2
    assert ".csv, .parquet or .xlsx" in capsys.readouterr().err


def test_indicators_xlsx_is_a_workbook(synth, tmp_path, capsys):
    pytest.importorskip("openpyxl")
    csv, xlsx = tmp_path / "ind.csv", tmp_path / "ind.xlsx"
    assert main(["-q", "indicators", str(synth / "eval.toml"), "--out", str(csv)]) == 0
    assert main(["-q", "indicators", str(synth / "eval.toml"), "--out", str(xlsx)]) == 0
    a, b = pd.read_csv(csv), pd.read_excel(xlsx)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    assert a["denominator"].fillna(-1).astype(int).tolist() == b["denominator"].fillna(-1).astype(int).tolist()


def test_extract_repr_counts_distinct_families(synth):
    ext = load_extract(synth / "eval.toml")
    fam = ext.tables["families"]
    n_families = fam["family_id"].nunique()
    assert n_families < len(fam)  # the crosswalk has a row per child
    assert f"families={n_families}," in repr(ext) and f"families={len(fam)}," not in repr(ext)
    assert f"children={len(ext.tables['children'])}," in repr(ext)
    small = Extract({"families": pd.DataFrame({"child_id": ["a", "b", "c"], "family_id": ["F1", "F1", None]})},
                    "2023-12-31")
    assert repr(small) == "Extract(extract_date=2023-12-31, children=0, families=1, episodes=0, reports=0, participation=0)"


def _messages_of(exc_info) -> str:
    return str(exc_info.value)


def test_no_numpy_repr_in_messages():
    """Messages that format data values: a constant covariate, separation by a level, a family
    with both arms (each used to read ``np.int64(...)`` under NumPy 2)."""
    from ppeval.matching import MatchingError, match
    from ppeval.propensity import PropensityError, propensity

    n = 60
    rng = np.random.default_rng(1)
    treated = np.r_[np.ones(19, bool), np.zeros(n - 19, bool)]
    df = pd.DataFrame({
        "treated": treated,
        "entry_year": np.full(n, 2016, dtype="int64"),
        "age": rng.normal(8, 3, n),
        "county": pd.Categorical(np.where(np.arange(n) < 3, 7, rng.integers(1, 4, n))),
        "family": np.repeat(np.arange(n // 2), 2),
    })
    messages = []
    with pytest.raises(PropensityError) as e:  # constant, declared categorical
        propensity(df, "treated", ["entry_year", "age"], categorical=["entry_year"])
    messages.append(_messages_of(e))
    assert "entry_year = 2016" in messages[-1]
    with pytest.raises(PropensityError) as e:  # county 7 only among treated units
        propensity(df, "treated", ["age", "county"])
    messages.append(_messages_of(e))
    assert "level 7" in messages[-1]
    ps = propensity(df, "treated", ["age"])
    with pytest.raises(MatchingError) as e:  # family 9 holds rows 18 (treated) and 19 (not)
        match(ps, cluster="family")
    messages.append(_messages_of(e))
    assert "data row 18" in messages[-1]
    for m in messages:
        assert not NUMPY_REPR.search(m), m


def test_cohort_console_flow_suppresses_small_counts(tmp_path, capsys):
    """``ppeval cohort`` prints the sample flow as the report publishes it: a one-year window
    of the 500-child extract has exclusions of 1 to 10 units, shown only as suppressed."""
    small = Path(__file__).parent / "hardening" / "small_extract"
    cfg = (small / "eval.toml").read_text().replace('entry_to = "2021-12-31"', 'entry_to = "2016-12-31"')
    (tmp_path / "eval.toml").write_text(cfg.replace('path = "', f'path = "{small}/'))
    assert main(["-q", "cohort", str(tmp_path / "eval.toml"), "--out", str(tmp_path / "c.csv")]) == 0
    printed = capsys.readouterr().out.splitlines()
    counts = [tok for line in printed[1:] for tok in line.split()[:3]]
    assert counts and all(t in ("<11", "suppressed") or t.replace(",", "").isdigit() for t in counts)
    assert not [t for t in counts if t.isdigit() and 1 <= int(t) <= 10]
    assert "<11" in counts or "suppressed" in counts  # the window does have small cells
