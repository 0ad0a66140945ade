"""The ``ncands`` preset: NCANDS Child File records to maltreatment reports (and children).

One report per (``RptID``, ``ChID``) (domain.md §3b):

* ``child_id`` = ``AFCARSID`` where the child links to foster care, else ``ChID``;
* ``report_id`` = ``RptID``, ``report_date`` = ``RptDt``;
* ``substantiated`` = any of ``Mal1Lev``-``Mal4Lev`` is 1 (substantiated) or 2 (indicated),
  the CFSR victim definition; false when some disposition is known and none is 1 or 2,
  missing when no disposition is known (blank or 99);
* ``maltreatment_types`` = the types in ``ChMal1``-``ChMal4`` (1 physical_abuse, 2 neglect,
  3 medical_neglect, 4 sexual_abuse, 5 psychological_maltreatment, 8 other, 9 unknown; 6 "no
  alleged maltreatment" and 99 are left out), ``;``-separated in that order.

A (``RptID``, ``ChID``) pair found on several records (the same report in two submission
years) becomes one report: the latest record's date and ids, substantiated if any record
says so, the union of the types; a warning counts them. Children without an ``AFCARSID`` are
added to the children table from ``ChBDate`` (or ``ChDOB``), else from ``ChAge``, ``ChSex`` (1 male, 2 female,
else unknown), ``ChRacAI ChRacAs ChRacBl ChRacNH ChRacWh ChRacUD`` (1 yes, 2 or 0 no, 9
missing), ``CEthn`` (1 Hispanic) and ``ChCnty`` (else ``RptCnty``), from their latest report
that has each attribute.

NCANDS child files as distributed carry the age at the report (``ChAge``; 77, 99 = missing)
rather than a birth date. A child aged ``a`` on ``RptDt`` = ``d`` was born in
``(d - (a+1) years, d - a years]``: ``birth_date_min`` = ``d - (a+1) years + 1 day`` and
``birth_date_max`` = ``d - a years`` (both inclusive; 29 February as ``pandas.DateOffset``).
The intervals of a child's reports are intersected; ages that contradict each other give
the widest interval and a warning. A birth date, where a record has one, wins (no interval
is kept). The ages on the reports of a child linked by ``AFCARSID`` are kept apart
(``LoadResult.linked_ages``): they give the AFCARS child its interval only where the AFCARS
records have no DOB (the DOB, where present, wins).

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "CF2019.tab").write_text(
...     "RptID\\tChID\\tAFCARSID\\tRptDt\\tChMal1\\tMal1Lev\\tChMal2\\tMal2Lev\\tChSex\\tChBDate\\n"
...     "R1\\tK1\\tC9\\t2019-03-01\\t2\\t5\\t1\\t1\\t1\\t2014-01-01\\n"
...     "R2\\tK2\\t\\t2019-04-02\\t2\\t5\\t\\t\\t2\\t2016-06-06\\n")
>>> res = load_ncands(["CF2019.tab"], base_dir=d)
>>> rep = res.frames()["reports"]
>>> rep[["child_id", "substantiated", "maltreatment_types"]].values.tolist()
[['C9', True, 'physical_abuse;neglect'], ['K2', False, 'neglect']]
>>> res.frames()["children"][["child_id", "sex"]].values.tolist()
[['K2', 'female']]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from ..problems import WARNING, Problem
from .canonical import DEFAULT_MAX_PROBLEMS_PER_COLUMN, LoadResult
from .preset import (
    Element,
    Groups,
    PresetFile,
    absent_warnings,
    bool_column,
    check_overrides,
    code_column,
    date_column,
    derive_race,
    element_values,
    group_starts,
    iter_preset_files,
    last_valid,
    shift_years,
    source_columns,
    string_column,
    take_or,
)

#: ChMal codes -> maltreatment type (6 "no alleged maltreatment" is not a type).
MALTREATMENT_TYPES: dict[str, str] = {
    "1": "physical_abuse",
    "2": "neglect",
    "3": "medical_neglect",
    "4": "sexual_abuse",
    "5": "psychological_maltreatment",
    "6": "no_alleged_maltreatment",
    "8": "other",
    "9": "unknown",
}
_TYPES = tuple(MALTREATMENT_TYPES.values())
_NOT_A_TYPE = _TYPES.index("no_alleged_maltreatment")
#: MalNLev disposition codes (1 substantiated, 2 indicated, 3-8 and 88/9 other findings).
DISPOSITIONS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "88")

RACE_ELEMENTS: dict[str, str] = {
    "ChRacAI": "american_indian_alaska_native",
    "ChRacAs": "asian",
    "ChRacBl": "black",
    "ChRacNH": "native_hawaiian_pacific_islander",
    "ChRacWh": "white",
}

ELEMENTS: tuple[Element, ...] = (
    Element("RptID", "id", "reports", identifying=True, required=True),
    Element("ChID", "id", "reports", identifying=True, required=True),
    Element("AFCARSID", "id", "reports", identifying=True),
    Element("RptDt", "date", "reports", required=True),
    *(Element(f"ChMal{i}", "code", "reports", codes=_TYPES, code_map=MALTREATMENT_TYPES, missing=("99",), expected=i == 1)
      for i in range(1, 5)),
    *(Element(f"Mal{i}Lev", "code", "reports", codes=DISPOSITIONS, missing=("99",), expected=i == 1) for i in range(1, 5)),
    Element("ChBDate", "date", "children", identifying=True, expected=False),
    Element("ChDOB", "date", "children", identifying=True, expected=False),
    # the age at the report, as distributed in place of the birth date (77, 99 = missing)
    Element("ChAge", "int", "children", missing=("77", "99"), expected=False),
    Element("ChSex", "code", "children", codes=("male", "female"), code_map={"1": "male", "2": "female"}, other="unknown"),
    *(Element(name, "bool", "children", missing=("9",)) for name in RACE_ELEMENTS),
    Element("ChRacUD", "bool", "children", missing=("9",)),
    Element("CEthn", "bool", "children", missing=("3", "9")),
    Element("ChCnty", "str", "children", expected=False),
    Element("RptCnty", "str", "reports", expected=False),
    Element("SubYr", "int", "reports", expected=False),
)
_BY_NAME = {e.name: e for e in ELEMENTS}


def _compact(pf: PresetFile) -> dict[str, object]:
    n = len(pf.raw)
    v = {name: element_values(pf, e, n) for name, e in _BY_NAME.items()}
    levels = [v[f"Mal{i}Lev"].values for i in range(1, 5)]
    known = np.zeros(n, dtype=bool)
    victim = np.zeros(n, dtype=bool)
    for lev in levels:
        known |= lev >= 0
        victim |= (lev == 0) | (lev == 1)  # codes "1" and "2"
    types = np.zeros(n, dtype=np.int64)
    for i in range(1, 5):
        t = v[f"ChMal{i}"].values
        has = (t >= 0) & (t != _NOT_A_TYPE)
        types |= np.where(has, 1 << np.clip(t, 0, None).astype(np.int64), 0)
    bdate = v["ChBDate"].values
    bdate = np.where(np.isnat(bdate), v["ChDOB"].values, bdate)
    bmin, bmax = age_interval(v["RptDt"].values, v["ChAge"].values, v["ChAge"].missing)
    return {
        "rpt": v["RptID"].values,
        "chid": v["ChID"].values,
        "afcarsid": v["AFCARSID"].values,
        # the child's county, else the county of the report
        "county": pc.coalesce(v["ChCnty"].values, v["RptCnty"].values),
        "date": v["RptDt"].values,
        "subst": np.where(victim, 1, np.where(known, 0, -1)).astype(np.int8),
        "types": types,
        "dob": bdate.astype("datetime64[D]"),
        "bmin": bmin,
        "bmax": bmax,
        "sex": v["ChSex"].values.astype(np.int16),
        "race": derive_race({race: v[e].values for e, race in RACE_ELEMENTS.items()}, v["ChRacUD"].values, v["CEthn"].values),
        "hisp": v["CEthn"].values,
        "subyr": np.where(v["SubYr"].missing, -1, v["SubYr"].values).astype(np.int64),
        "file": np.full(n, pf.index, dtype=np.int32),
        "line": pf.raw.rows.astype(np.int64),
    }


#: Ages at the report (``ChAge``) read as an age; others are taken as missing codes.
MAX_AGE_YEARS = 30


def age_interval(report_date: np.ndarray, age: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Birth-date interval of each record from its age at the report.

    A child aged ``a`` (completed years) on the report date ``d`` was born after
    ``d - (a + 1)`` years and on or before ``d - a`` years: the interval returned is
    ``[d - (a + 1) years + 1 day, d - a years]``, both ends inclusive. NaT where the age or
    the date is missing, or the age is outside 0-:data:`MAX_AGE_YEARS`.

    Examples
    --------
    >>> d = np.array(["2020-06-15", "2020-06-15"], dtype="datetime64[D]")
    >>> lo, hi = age_interval(d, np.array([3, 99]), np.array([False, True]))
    >>> lo.astype(str).tolist(), hi.astype(str).tolist()
    (['2016-06-16', 'NaT'], ['2017-06-15', 'NaT'])
    """
    a = np.asarray(age, dtype=np.int64)
    ok = ~np.asarray(missing, dtype=bool) & (a >= 0) & (a <= MAX_AGE_YEARS) & ~np.isnat(report_date)
    d = np.where(ok, report_date, np.datetime64("NaT", "D")).astype("datetime64[D]")
    a = np.where(ok, a, 0)
    one = np.timedelta64(1, "D")
    hi = shift_years(d, -a)
    lo = shift_years(d, -(a + 1)) + one
    # 29 February births turn a year older on 28 February in other years (the cohort's
    # DateOffset convention): on a 28 February the bounds move by a day where that applies
    with np.errstate(invalid="ignore"):
        hi = np.where(shift_years(hi + one, a) <= d, hi + one, hi)
        lo = np.where(shift_years(lo, a + 1) <= d, lo + one, lo)
    return lo, hi


def birth_intervals(
    dob: np.ndarray, lo: np.ndarray, hi: np.ndarray, hull_lo: np.ndarray, hull_hi: np.ndarray,
    files: list[str], file_idx: np.ndarray, rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """Each child's birth-date interval: the intersection of its records' intervals.

    ``lo``/``hi`` are the latest earliest-birth and the earliest latest-birth over the
    child's records with an age (the intersection), ``hull_lo``/``hull_hi`` the widest
    bounds (the union). A child with a birth date (``ChBDate``/``ChDOB``) keeps no interval:
    the date wins. Ages that contradict each other (empty intersection) give the union,
    wide but containing every reported age, and one warning at the first such child's
    latest record (the count is said only from 11 up: a small count is never published).

    Shared by the pandas and DuckDB engines, so both give the same tables and problems.
    """
    has_dob = ~np.isnat(dob)
    empty = ~np.isnat(lo) & (lo > hi)
    bmin = np.where(empty, hull_lo, lo)
    bmax = np.where(empty, hull_hi, hi)
    nat = np.datetime64("NaT", "D")
    bmin = np.where(has_dob, nat, bmin).astype("datetime64[D]")
    bmax = np.where(has_dob, nat, bmax).astype("datetime64[D]")
    problems: list[Problem] = []
    bad = np.flatnonzero(empty & ~has_dob)
    if len(bad):
        k = len(bad)
        many = f"{k} children's" if k >= SMALL_COUNT else "some children's"
        problems.append(
            Problem(
                WARNING, files[int(file_idx[bad[0]])], int(rows[bad[0]]), "ChAge", None,
                "ages at the reports of one child that agree with one birth date",
                f"{many} ages on different reports contradict each other (no birth date fits them all); the birth "
                "date was taken to lie anywhere between the earliest and the latest the reports allow",
                "children",
            )
        )
    return bmin, bmax, problems


def linked_age_table(ids: np.ndarray, lo: np.ndarray, hi: np.ndarray, hull_lo: np.ndarray,
                     hull_hi: np.ndarray) -> pd.DataFrame:
    """Birth-date intervals of children linked to foster care (``AFCARSID``), sorted by id.

    The intersection of each child's report intervals (the union where they contradict each
    other, as for NCANDS-only children). Used only where the AFCARS records give no DOB.
    """
    empty = lo > hi
    out = pd.DataFrame({
        "child_id": pd.array(ids, dtype="string"),
        "birth_date_min": np.where(empty, hull_lo, lo).astype("datetime64[ns]"),
        "birth_date_max": np.where(empty, hull_hi, hi).astype("datetime64[ns]"),
    })
    return out.sort_values("child_id", kind="mergesort").reset_index(drop=True)


def fill_linked_ages(children: pd.DataFrame, pieces: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Give children with neither a birth date nor an interval the age interval of their
    linked NCANDS reports (an AFCARS child without DOB); a DOB, where present, wins.

    Examples
    --------
    >>> kids = pd.DataFrame({"child_id": ["A1", "A2"], "birth_date": pd.to_datetime(["2012-05-01", None])})
    >>> ages = pd.DataFrame({"child_id": ["A1", "A2"], "birth_date_min": pd.to_datetime(["2001-01-01"] * 2),
    ...                      "birth_date_max": pd.to_datetime(["2001-12-31"] * 2)})
    >>> fill_linked_ages(kids, [ages])["birth_date_min"].astype(str).tolist()
    ['NaT', '2001-01-01']
    """
    if not pieces or not len(children):
        return children
    ages = pd.concat(pieces, ignore_index=True).groupby("child_id", sort=False).agg(
        lo=("birth_date_min", "max"), hi=("birth_date_max", "min"))
    out = children
    nat = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
    lo_now = out["birth_date_min"] if "birth_date_min" in out else nat
    hi_now = out["birth_date_max"] if "birth_date_max" in out else nat
    need = out["birth_date"].isna() & lo_now.isna() & hi_now.isna()
    lo = out["child_id"].astype("string").map(ages["lo"]).astype("datetime64[ns]")
    hi = out["child_id"].astype("string").map(ages["hi"]).astype("datetime64[ns]")
    fill = (need & lo.notna() & hi.notna() & (lo <= hi)).to_numpy()
    if not fill.any():
        return children
    out = children.copy()
    out["birth_date_min"] = lo_now.where(~fill, lo)
    out["birth_date_max"] = hi_now.where(~fill, hi)
    return out


#: Counts below this are not repeated in messages (the default small-cell threshold).
SMALL_COUNT = 11


def _type_names(masks: np.ndarray) -> pd.Series:
    """Bit masks of maltreatment types as ';'-separated names (one string per distinct mask)."""
    uniq, inverse = np.unique(masks, return_inverse=True)
    names = np.array(
        [";".join(t for b, t in enumerate(_TYPES) if m >> b & 1) or None for m in uniq.tolist()], dtype=object
    )
    return pd.Series(pd.array(names[inverse], dtype="string"))


def load_ncands(
    paths: Sequence[str | Path],
    *,
    base_dir: str | Path = ".",
    encoding: str = "utf-8",
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
    max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> LoadResult:
    """Load NCANDS Child Files into the reports table (and NCANDS-only children).

    Parameters are those of :func:`ppeval.load.afcars.load_afcars`.

    Returns
    -------
    LoadResult
        ``reports`` and ``children`` tables, every problem, one input per file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "CF.tab").write_text("RptID\\tChID\\tAFCARSID\\tRptDt\\tMal1Lev\\nR1\\tK1\\tA7\\t2020-02-02\\t2\\n")
    >>> load_ncands(["CF.tab"], base_dir=d).frames()["reports"][["child_id", "substantiated"]].values.tolist()
    [['A7', True]]
    """
    overrides = check_overrides("ncands", columns, ELEMENTS)
    res = LoadResult()
    labels = [str(p) for p in paths]
    parts = []
    absent: list[tuple[str, list[str], list[str]]] = []
    for _i, _label, box in iter_preset_files(
        "ncands", labels, base_dir, ELEMENTS, overrides, res.problems, res.inputs, absent,
        encoding=encoding, delimiter=delimiter, max_problems_per_column=max_problems_per_column,
    ):
        pf = box.pop()
        parts.append(_compact(pf))
        del pf
    res.problems.extend(absent_warnings("ncands", absent))
    if not parts:
        return res
    data: dict[str, object] = {}
    for key in parts[0]:
        values = [p[key] for p in parts]
        data[key] = pa.concat_arrays(values) if isinstance(values[0], pa.Array) else np.concatenate(values)
    if len(data["line"]) == 0:  # every row of every file was unusable (each one reported)
        return res
    reports, children, problems, linked_ages = _build(data, labels)
    res.problems.extend(problems)
    res.add_table("reports", reports)
    res.add_table("children", children)
    if linked_ages is not None:
        res.linked_ages.append(linked_ages)
    return res


def _codes(arr: pa.Array) -> np.ndarray:
    """Dense integer codes of strings; each missing value gets its own code (never merged)."""
    enc = pc.dictionary_encode(arr)
    codes = np.asarray(enc.indices.fill_null(-1), dtype=np.int64)
    blank = codes < 0
    codes[blank] = len(enc.dictionary) + np.arange(int(blank.sum()))
    return codes


def _build(
    data: dict[str, object], labels: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[Problem], pd.DataFrame | None]:
    n = len(data["line"])
    file_idx, line = data["file"], data["line"]
    seq = (file_idx.astype(np.int64) << 32) | line
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((seq, data["subyr"]))] = np.arange(n, dtype=np.int64)
    rpt, chid = _codes(data["rpt"]), _codes(data["chid"])
    order = np.lexsort((rank, chid, rpt))
    starts = group_starts(rpt[order], chid[order])
    ends = np.r_[starts[1:], n] - 1
    last = order[ends]  # the latest record of each (RptID, ChID)
    problems: list[Problem] = []
    dup = len(starts) < n
    if dup:
        sizes = np.diff(np.r_[starts, n])
        first_dup = order[starts[np.argmax(sizes > 1)] + 1]
        problems.append(
            Problem(
                WARNING, labels[int(file_idx[first_dup])], int(line[first_dup]), "RptID", None,
                "one record per (RptID, ChID)",
                f"{int((sizes > 1).sum())} (RptID, ChID) pair(s) appear on more than one record; each became one "
                f"report (latest record's date, substantiated if any record is, all maltreatment types)",
                "reports",
            )
        )
    subst = data["subst"][order]
    types = data["types"][order]
    subst_g = np.maximum.reduceat(subst, starts) if n else subst
    types_g = np.bitwise_or.reduceat(types, starts) if n else types
    afcars_valid = np.asarray(data["afcarsid"].is_valid(), dtype=bool)[order]
    i_af = last_valid(afcars_valid, starts)
    af = data["afcarsid"].take(pa.array(order)).take(pa.array(np.where(i_af < 0, 0, i_af), mask=i_af < 0))
    ch = data["chid"].take(pa.array(last))
    child_id = pc.coalesce(af, ch)
    reports = pd.DataFrame(
        {
            "child_id": string_column(child_id),
            "report_date": date_column(data["date"][last]),
            "substantiated": bool_column(subst_g),
            "report_id": string_column(data["rpt"].take(pa.array(last))),
            "maltreatment_types": _type_names(types_g),
            **source_columns(labels, file_idx[last], line[last]),
        }
    )

    # ---- ages of children linked to foster care: AFCARS's DOB wins, these fill it only when
    # the AFCARS records have none (see LoadResult.frames)
    linked = np.flatnonzero(np.asarray(data["afcarsid"].is_valid(), dtype=bool) & ~np.isnat(data["bmin"]))
    linked_ages = None
    if len(linked):
        ids = data["afcarsid"].take(pa.array(linked)).to_numpy(zero_copy_only=False)
        frame = pd.DataFrame({"id": ids, "lo": data["bmin"][linked], "hi": data["bmax"][linked]})
        g = frame.groupby("id", sort=False).agg(lo=("lo", "max"), hi=("hi", "min"), hull_lo=("lo", "min"),
                                                hull_hi=("hi", "max"))
        linked_ages = linked_age_table(g.index.to_numpy(dtype=object), *(g[k].to_numpy().astype("datetime64[D]")
                                                                        for k in ("lo", "hi", "hull_lo", "hull_hi")))

    # ---- children known to NCANDS only: the ChIDs used as child_id (no AFCARSID)
    no_link = np.asarray(data["afcarsid"].is_null(), dtype=bool)
    rows = np.flatnonzero(no_link & np.asarray(data["chid"].is_valid(), dtype=bool))
    if not len(rows):
        return reports, None, problems, linked_ages
    c_order = rows[np.lexsort((rank[rows], chid[rows]))]
    cstarts = group_starts(chid[c_order])
    cg = Groups(cstarts, len(c_order), rank[c_order])
    dob, sex, race, hisp = (data[k][c_order] for k in ("dob", "sex", "race", "hisp"))
    county = data["county"].take(pa.array(c_order))
    unknown_race = list(schema.RACE_ETHNICITY_CODES).index("unknown")
    i_sex = cg.last((sex >= 0) & (sex < 2))
    i_race = cg.last((race >= 0) & (race != unknown_race))
    i_cty = cg.last(np.asarray(county.is_valid(), dtype=bool))
    latest = cg.last(np.ones(len(c_order), dtype=bool))
    nat = np.datetime64("NaT", "D")
    child_dob = take_or(dob, cg.last(~np.isnat(dob)), nat)
    lo_days, hi_days = (data[k][c_order].astype("datetime64[D]") for k in ("bmin", "bmax"))
    lo_i, hi_i = lo_days.astype(np.int64), hi_days.astype(np.int64)
    has_age = ~np.isnat(lo_days)
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    # intersection: the latest lower and the earliest upper bound; the union for contradictions
    inter_lo = np.maximum.reduceat(np.where(has_age, lo_i, small), cstarts)
    inter_hi = np.minimum.reduceat(np.where(has_age, hi_i, big), cstarts)
    hull_lo = np.minimum.reduceat(np.where(has_age, lo_i, big), cstarts)
    hull_hi = np.maximum.reduceat(np.where(has_age, hi_i, small), cstarts)
    any_age = np.logical_or.reduceat(has_age, cstarts)

    def _days(x: np.ndarray) -> np.ndarray:
        return np.where(any_age, x, np.datetime64("NaT", "D").astype(np.int64)).astype("datetime64[D]")

    src_file, src_line = file_idx[c_order[latest]], line[c_order[latest]]
    bmin, bmax, age_problems = birth_intervals(
        child_dob, _days(inter_lo), _days(inter_hi), _days(hull_lo), _days(hull_hi), labels, src_file, src_line
    )
    problems.extend(age_problems)
    children = pd.DataFrame(
        {
            "child_id": string_column(data["chid"].take(pa.array(c_order[cstarts]))),
            "birth_date": date_column(child_dob),
            "birth_date_min": date_column(bmin),
            "birth_date_max": date_column(bmax),
            "sex": code_column(np.where(i_sex >= 0, take_or(sex, i_sex, 2), 2), ("male", "female", "unknown")),
            "race_ethnicity": code_column(np.where(i_race >= 0, take_or(race, i_race, unknown_race), unknown_race),
                                          schema.RACE_ETHNICITY_CODES),
            "hispanic": bool_column(take_or(hisp, cg.last(hisp >= 0), -1)),
            "county": string_column(county.take(pa.array(np.where(i_cty < 0, 0, i_cty), mask=i_cty < 0))),
            **source_columns(labels, src_file, src_line),
        }
    )
    return reports, children, problems, linked_ages
