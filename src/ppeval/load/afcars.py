"""The ``afcars`` preset: legacy AFCARS foster-care files to children and episodes.

Legacy AFCARS (45 CFR 1355 App. A) files are semi-annual snapshots: one record per child in
care during the period, with NDACAN element names (domain.md §3a). The preset stacks any
number of them and builds

* **episodes**: one per (``RecNumbr``, ``LatRemDt``). The discharge date and reason come from
  the record that carries a discharge (``DoDFCDt``, ``DISREASN`` 1-8 in the order of
  :data:`ppeval.schema.DISCHARGE_REASONS`; 0, 99 or blank = not discharged); removal reasons
  from the E26-E40 flags (``removal_<reason>``, 1 = yes, 2 or 0 = no, 99 or blank missing),
  taken from the latest record that has them; ``CurPlSet`` (1-8 ->
  :data:`~ppeval.schema.PLACEMENT_SETTINGS`), ``NumPlep`` and ``FIPSCode`` from the episode's
  latest record; TPR dates from ``TPRMomDt``/``TPRDadDt`` (latest non-missing). When an
  episode has no discharge record but the child's next episode carries ``DLstFCDt`` (the
  discharge date of the previous episode), that date closes the earlier episode (reason
  unknown) and a warning names the record it came from;
* **children**: one per ``RecNumbr``: ``DOB``, ``Sex`` (1 male, 2 female, anything else
  unknown), race/ethnicity from ``AmIAKN Asian BlkAfrAm HawaiiPI White UnToDetm`` and
  ``HisOrgin`` (see :func:`~ppeval.load.preset.derive_race`), county from ``FIPSCode``; each
  attribute from the latest record (by report period) that reports a known value.

Records are ordered by report period (``RepDatYr``, ``RepDatMo``) when every file has them,
else by the order of the files in the config. Column names are matched case-insensitively.
Everything is vectorised: 40 period files of a million children load in seconds.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "FC2019A.tab").write_text(
...     "RecNumbr\\tDOB\\tSex\\tLatRemDt\\tDoDFCDt\\tDISREASN\\tNeglect\\n"
...     "C1\\t2012-05-01\\t2\\t2019-01-10\\t\\t0\\t1\\n")
>>> _ = (d / "FC2019B.tab").write_text(
...     "RECNUMBR\\tDOB\\tSEX\\tLATREMDT\\tDODFCDT\\tDISREASN\\tNEGLECT\\n"
...     "C1\\t2012-05-01\\t2\\t2019-01-10\\t2019-09-30\\t1\\t1\\n")
>>> res = load_afcars(["FC2019A.tab", "FC2019B.tab"], base_dir=d)
>>> ep = res.frames()["episodes"]
>>> ep[["removal_date", "discharge_date", "discharge_reason", "removal_neglect"]].astype(str).values.tolist()
[['2019-01-10', '2019-09-30', 'reunification', 'True']]
>>> res.frames()["children"]["sex"].tolist()
['female']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from ..problems import ERROR, WARNING, Problem
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
    source_columns,
    string_column,
    take_or,
)

_DISREASN = {str(i + 1): reason for i, reason in enumerate(schema.DISCHARGE_REASONS[:8])}
_CURPLSET = {str(i + 1): setting for i, setting in enumerate(schema.PLACEMENT_SETTINGS)}
_SEX = ("male", "female")

#: Legacy AFCARS race element -> canonical race (E08a-e).
RACE_ELEMENTS: dict[str, str] = {
    "AmIAKN": "american_indian_alaska_native",
    "Asian": "asian",
    "BlkAfrAm": "black",
    "HawaiiPI": "native_hawaiian_pacific_islander",
    "White": "white",
}

#: Every element the preset reads.
ELEMENTS: tuple[Element, ...] = (
    Element("RecNumbr", "id", "episodes", identifying=True, required=True),
    Element("LatRemDt", "date", "episodes", required=True),
    Element("DOB", "date", "children", identifying=True),
    Element("Sex", "code", "children", codes=_SEX, code_map={"1": "male", "2": "female"}, other="unknown"),
    *(Element(name, "bool", "children") for name in RACE_ELEMENTS),
    Element("UnToDetm", "bool", "children"),
    # HisOrgin 3 = "unable to determine"
    Element("HisOrgin", "bool", "children", missing=("3",)),
    Element("FIPSCode", "str", "episodes"),
    Element("DoDFCDt", "date", "episodes"),
    Element("DISREASN", "code", "episodes", codes=schema.DISCHARGE_REASONS, code_map=_DISREASN, missing=("0", "99")),
    Element("DLstFCDt", "date", "episodes"),
    *(Element(element, "bool", "episodes") for element in schema.REMOVAL_REASONS.values()),
    Element("CurPlSet", "code", "episodes", codes=schema.PLACEMENT_SETTINGS, code_map=_CURPLSET, missing=("0", "99")),
    Element("NumPlep", "int", "episodes"),
    Element("TPRMomDt", "date", "episodes"),
    Element("TPRDadDt", "date", "episodes"),
    Element("RepDatYr", "int", "episodes", expected=False),
    Element("RepDatMo", "int", "episodes", expected=False),
)
_BY_NAME = {e.name: e for e in ELEMENTS}
_DATES = ("LatRemDt", "DOB", "DoDFCDt", "DLstFCDt", "TPRMomDt", "TPRDadDt")


def _compact(pf: PresetFile, problems: list[Problem]) -> dict[str, object]:
    """One file's elements as compact arrays (the text columns are released afterwards)."""
    n = len(pf.raw)
    v = {name: element_values(pf, e, n) for name, e in _BY_NAME.items()}
    out: dict[str, object] = {
        "rec": v["RecNumbr"].values,
        "fips": v["FIPSCode"].values,
        "file": np.full(n, pf.index, dtype=np.int32),
        "line": pf.raw.rows.astype(np.int64),
    }
    for name in _DATES:
        out[name] = v[name].values
    for name in ("DISREASN", "CurPlSet", "Sex"):
        out[name] = v[name].values.astype(np.int16)
    for element in schema.REMOVAL_REASONS.values():
        out[element] = v[element].values
    out["NumPlep"] = np.where(v["NumPlep"].missing, np.nan, v["NumPlep"].values.astype("float64"))
    yr, mo = v["RepDatYr"], v["RepDatMo"]
    out["period"] = np.where(yr.missing | mo.missing, -1, yr.values * 100 + mo.values).astype(np.int64)
    out["race"] = derive_race(
        {race: v[element].values for element, race in RACE_ELEMENTS.items()}, v["UnToDetm"].values, v["HisOrgin"].values
    )
    out["hisp"] = v["HisOrgin"].values
    # Records that cannot be placed in an episode: say so (blank keys are not parse errors).
    for name, what in (("RecNumbr", "the record cannot be assigned to a child"), ("LatRemDt", "the record cannot be assigned to an episode")):
        p = v[name]
        blank = np.flatnonzero(p.missing & ~p.bad)
        for i in blank[:DEFAULT_MAX_PROBLEMS_PER_COLUMN]:
            problems.append(
                Problem(ERROR, pf.raw.label, int(pf.raw.rows[i]), pf.source_name(name), None,
                        f"a {name} on every record", f"{name} is blank: {what}", "episodes")
            )
        if len(blank) > DEFAULT_MAX_PROBLEMS_PER_COLUMN:
            problems.append(
                Problem(ERROR, pf.raw.label, None, pf.source_name(name), None, f"a {name} on every record",
                        f"{name} is blank on {len(blank) - DEFAULT_MAX_PROBLEMS_PER_COLUMN} more record(s)", "episodes")
            )
    return out


def _concat(parts: list[dict[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in parts[0]:
        values = [p[key] for p in parts]
        if isinstance(values[0], pa.Array):
            out[key] = pa.concat_arrays([a.cast(pa.string()) for a in values])
        else:
            out[key] = np.concatenate(values)
    return out


def load_afcars(
    paths: Sequence[str | Path],
    *,
    base_dir: str | Path = ".",
    encoding: str = "utf-8",
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
    max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> LoadResult:
    """Load legacy AFCARS foster-care files into the children and episodes tables.

    Parameters
    ----------
    paths : sequence of str or Path
        The period files, as written in the config (relative to ``base_dir``); they name
        the files in problems and provenance.
    base_dir : str or Path
        Folder relative paths are resolved against (the config's folder).
    encoding, delimiter : str
        Of the text files (tab-delimited by default, UTF-8 by default).
    columns : mapping, optional
        ``{element: source_name}`` for files that name an element differently.
    max_problems_per_column : int or None
        Bad cells listed one by one per file and column.

    Returns
    -------
    LoadResult
        ``children`` and ``episodes`` tables, every problem, one input per file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "FC2020A.tab").write_text("recnumbr\\tdob\\tlatremdt\\tneglect\\nA7\\t2015-01-01\\t2019-12-01\\t2\\n")
    >>> res = load_afcars(["FC2020A.tab"], base_dir=d)
    >>> res.frames()["episodes"][["child_id", "removal_neglect"]].values.tolist()
    [['A7', False]]
    """
    overrides = check_overrides("afcars", columns, ELEMENTS)
    res = LoadResult()
    labels = [str(p) for p in paths]
    parts: list[dict[str, object]] = []
    names_by_file: dict[int, dict[str, str]] = {}

    absent: list[tuple[str, list[str], list[str]]] = []
    for i, _label, box in iter_preset_files(
        "afcars", labels, base_dir, ELEMENTS, overrides, res.problems, res.inputs, absent,
        encoding=encoding, delimiter=delimiter, max_problems_per_column=max_problems_per_column,
    ):
        pf = box.pop()
        # keep only compact arrays: the text columns of each file are released at once
        parts.append(_compact(pf, res.problems))
        names_by_file[i] = {e.name: pf.source_name(e.name) for e in ELEMENTS}
        del pf
    res.problems.extend(absent_warnings("afcars", absent))
    if not parts:
        return res
    data = _concat(parts)
    del parts
    if len(data["line"]) == 0:  # every row of every file was unusable (each one reported)
        return res
    episodes, children, warnings = _stack(data, labels, names_by_file, max_problems_per_column)
    res.problems.extend(warnings)
    res.add_table("children", children)
    res.add_table("episodes", episodes)
    return res


def _stack(
    data: dict[str, object], labels: list[str], names_by_file: dict[int, dict[str, str]], limit: int | None
) -> tuple[pd.DataFrame, pd.DataFrame, list[Problem]]:
    n = len(data["line"])
    enc = pc.dictionary_encode(data["rec"])
    dictionary = enc.dictionary
    n_ids = len(dictionary)
    rec = np.asarray(enc.indices.fill_null(-1), dtype=np.int64)
    blank = rec < 0
    # A record without RecNumbr is its own child and episode: never merged with another.
    rec[blank] = n_ids + np.arange(int(blank.sum()))

    file_idx = data["file"]
    period = data["period"] if bool((data["period"] >= 0).all()) else file_idx.astype(np.int64)
    # Time order of the records: report period, then file order, then line. Records arrive
    # in file and line order, so a stable sort by period is enough (and often a no-op).
    by_time = np.arange(n) if bool((np.diff(period) >= 0).all()) else np.argsort(period, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[by_time] = np.arange(n, dtype=np.int64)
    lat_i = data["LatRemDt"].astype("int64")  # NaT = int64 minimum
    # One composite key (child, removal day) sorted stably over the time order gives the
    # order (child, removal date, time) - faster than a three-key lexsort.
    valid_lat = ~np.isnat(data["LatRemDt"])
    day0 = int(lat_i[valid_lat].min()) - 1 if valid_lat.any() else 0
    lat_key = np.where(valid_lat, lat_i - day0, 0)  # < 2**18: dates are limited to 1800-2200
    key = (rec[by_time] << 20) | lat_key[by_time]
    order = by_time[np.argsort(key, kind="stable")]

    def s(key: str) -> np.ndarray:
        return data[key][order]

    rec_s, lat_s, rank_s = rec[order], data["LatRemDt"][order], rank[order]
    file_s, line_s = file_idx[order], data["line"][order]
    nat = np.datetime64("NaT", "D")

    # ---- episodes
    starts = group_starts(rec_s, lat_i[order])
    ends = np.r_[starts[1:], n] - 1
    eg = Groups(starts, n)
    e_rec = rec_s[starts]
    e_lat = lat_s[starts]
    dod = s("DoDFCDt")
    i_dis = eg.last(~np.isnat(dod))
    discharge = take_or(dod, i_dis, nat)
    reason = take_or(s("DISREASN"), i_dis, -1)
    ep: dict[str, pd.Series] = {
        "child_id": string_column(_ids(dictionary, e_rec, n_ids)),
        "removal_date": date_column(e_lat),
    }
    for key, canonical in (("TPRMomDt", "tpr_mother_date"), ("TPRDadDt", "tpr_father_date")):
        v = s(key)
        ep[canonical] = take_or(v, eg.last(~np.isnat(v)), nat)
    dlst = s("DLstFCDt")
    i_dl = eg.last(~np.isnat(dlst))
    e_dlst = take_or(dlst, i_dl, nat)

    # DLstFCDt rule: close an episode left open by a missing discharge record.
    warnings: list[Problem] = []
    same = e_rec[:-1] == e_rec[1:]
    k = np.flatnonzero(same & np.isnat(discharge[:-1]) & ~np.isnat(e_lat[:-1]) & ~np.isnat(e_dlst[1:]))
    if len(k):
        d = e_dlst[k + 1]
        inside = (d >= e_lat[k]) & (d <= e_lat[k + 1])
        discharge[k[inside]] = d[inside]
        src = i_dl[k + 1]
        for j, (kk, ok) in enumerate(zip(k, inside, strict=True)):
            if limit is not None and j >= limit:
                warnings.append(
                    Problem(WARNING, labels[int(file_s[src[j]])], None, "DLstFCDt", None,
                            "a discharge record for every episode that ended",
                            f"{len(k) - limit} more episode(s) were closed (or not) from DLstFCDt as above; "
                            f"only the first {limit} are listed", "episodes")
                )
                break
            f = int(file_s[src[j]])
            removed = str(e_lat[kk])
            if ok:
                message = (f"the episode removed on {removed} has no discharge record; its discharge date was set "
                           f"from DLstFCDt on this record of the next episode (discharge reason unknown)")
            else:
                message = (f"DLstFCDt is not between the removal dates {removed} and {e_lat[kk + 1]} of the "
                           f"child's episodes; not used to close the earlier episode, which stays open")
            warnings.append(
                Problem(WARNING, labels[f], int(line_s[src[j]]), names_by_file[f]["DLstFCDt"], str(d[j]),
                        "a discharge record (DoDFCDt, DISREASN) for every episode that ended", message, "episodes")
            )
    ep["discharge_date"] = date_column(discharge)
    ep["discharge_reason"] = code_column(reason, schema.DISCHARGE_REASONS)
    for reason_name, element in schema.REMOVAL_REASONS.items():
        v = s(element)
        ep[f"removal_{reason_name}"] = bool_column(take_or(v, eg.last(v >= 0), -1))
    ep["placement_setting"] = code_column(s("CurPlSet")[ends], schema.PLACEMENT_SETTINGS)
    numplep = s("NumPlep")[ends]
    ep["placements"] = pd.Series(pd.arrays.IntegerArray(np.nan_to_num(numplep).astype("int64"), np.isnan(numplep)))
    fips_s = data["fips"].take(pa.array(order))
    ep["county"] = string_column(fips_s.take(pa.array(ends)))
    ep["tpr_mother_date"] = date_column(ep["tpr_mother_date"])
    ep["tpr_father_date"] = date_column(ep["tpr_father_date"])
    ep.update(source_columns(labels, file_s[ends], line_s[ends]))
    columns = [c for c in schema.TABLES["episodes"].names if c in ep] + [schema.SOURCE_FILE, schema.SOURCE_ROW]
    episodes = pd.DataFrame({c: ep[c] for c in columns})

    # ---- children (records without RecNumbr have no child to describe)
    cstarts = group_starts(rec_s)
    keep = rec_s[cstarts] < n_ids
    cg = Groups(cstarts, n, rank_s)
    dob = s("DOB")
    sex = s("Sex")
    race = s("race")
    hisp = s("hisp")
    fips_valid = np.asarray(fips_s.is_valid(), dtype=bool)
    latest = cg.last(np.ones(n, dtype=bool))
    i_sex = cg.last((sex >= 0) & (sex < 2))  # male/female before "unknown"
    unknown_race = list(schema.RACE_ETHNICITY_CODES).index("unknown")
    i_race = cg.last((race >= 0) & (race != unknown_race))
    ch = {
        "child_id": string_column(_ids(dictionary, rec_s[cstarts], n_ids)),
        "birth_date": date_column(take_or(dob, cg.last(~np.isnat(dob)), nat)),
        "sex": code_column(np.where(i_sex >= 0, take_or(sex, i_sex, 2), 2), (*_SEX, "unknown")),
        "race_ethnicity": code_column(np.where(i_race >= 0, take_or(race, i_race, unknown_race), unknown_race),
                                      schema.RACE_ETHNICITY_CODES),
        "hispanic": bool_column(take_or(hisp, cg.last(hisp >= 0), -1)),
        "county": string_column(_take_strings(fips_s, cg.last(fips_valid))),
        **source_columns(labels, file_s[latest], line_s[latest]),
    }
    children = pd.DataFrame(ch)[keep].reset_index(drop=True)
    return episodes, children, warnings


def _ids(dictionary: pa.Array, codes: np.ndarray, n_ids: int) -> pa.Array:
    """Child ids from dictionary positions (positions past the dictionary = blank RecNumbr)."""
    blank = codes >= n_ids
    return dictionary.take(pa.array(np.where(blank, 0, codes), mask=blank)) if len(dictionary) else pa.nulls(len(codes), pa.string())


def _take_strings(values: pa.Array, idx: np.ndarray) -> pa.Array:
    none = idx < 0
    return values.take(pa.array(np.where(none, 0, idx), mask=none)) if len(values) else pa.nulls(len(idx), pa.string())
