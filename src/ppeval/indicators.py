"""CFSR-style observed indicators by entry year and arm: P1, P4 and S2.

These are the *observed* rates computed with the CFSR Round 3/4 rules (domain.md §2). They
are not the Children's Bureau's risk-standardised performance (RSP), which needs national
child-level data and cannot be replicated by a state; ppeval never claims RSP.

* **P1** permanency in 12 months for children entering care: entries in the year (first
  entry in the year per child; stays under 8 days and entries at 18 or over excluded);
  numerator: discharged to reunification, relative, guardianship or adoption within 12 months
  of entry and before the 18th birthday.
* **P4** re-entry within 12 months: entries in the year discharged within 12 months to
  reunification, relative or guardianship, aged under 18 at entry and exit; numerator: a new
  removal within 12 months of that discharge.
* **S2** recurrence within 12 months: children with a substantiated report in the year (their
  first one in the year), under 18; numerator: another substantiated report within 12 months
  of it, reports within 14 days of the previous one not counting.

A year is reported only when its whole follow-up lies before the extract date.
The arm of a unit: *served* when a parent of the child's family enrolled in the program during
the episode (P1, P4) or within the 12 months after the report (S2).

Examples
--------
>>> tab = cfsr_indicators(ext)   # doctest: +SKIP
>>> tab.columns.tolist()         # doctest: +SKIP
['indicator', 'year', 'arm', 'denominator', 'numerator', 'rate', 'note']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import outcomes as oc
from .cohort import _children_with_birth_bounds
from .extract import Extract

_P4_EXITS = frozenset({"reunification", "relative", "guardianship"})
NOTE = "observed (not risk-standardised)"


def _family_of(ext: Extract) -> pd.Series:
    from .cohort import _family_map

    return _family_map(ext)


def _served_during(units: pd.DataFrame, ext: Extract, start: str, end: pd.Series) -> pd.Series:
    from .cohort import _enrollments

    enr = _enrollments(ext, _family_of(ext))
    if enr.empty:
        return pd.Series(False, index=units.index)
    fam = units["child_id"].map(_family_of(ext)).fillna(units["child_id"])
    cand = pd.DataFrame({"family_id": fam, "_s": units[start], "_e": end}).reset_index().merge(enr[["family_id", "enrolled_date"]], on="family_id")
    hit = cand[(cand["enrolled_date"] >= cand["_s"]) & (cand["enrolled_date"] < cand["_e"])]["index"].unique()
    return pd.Series(units.index.isin(hit), index=units.index)


def _rates(df: pd.DataFrame, indicator: str, num: str) -> pd.DataFrame:
    both = pd.concat([df.assign(arm=np.where(df["served"], "served", "not served")), df.assign(arm="all")])
    g = both.groupby(["year", "arm"])
    out = g.agg(denominator=(num, "size"), numerator=(num, "sum")).reset_index()
    out["rate"] = out["numerator"] / out["denominator"]
    out.insert(0, "indicator", indicator)
    out["note"] = NOTE
    return out


def cfsr_indicators(ext: Extract, years: list[int] | None = None) -> pd.DataFrame:
    """P1, P4 and S2 by calendar year of entry (or report) and arm (served, not served, all).

    Parameters
    ----------
    ext : Extract
    years : list of int, optional
        Restrict to these years; by default every year whose follow-up is complete.

    Returns
    -------
    DataFrame with indicator, year, arm, denominator, numerator, rate, note.
    """
    ex = ext.extract_date
    # the earliest possible birth: equal to the birth date where there is one; for a birth
    # known only as an interval (an age at a report) the age-18 rules are applied as if the
    # child were as old as it may be (a possibly adult child is left out, as in the cohort)
    ch = _children_with_birth_bounds(ext.canonical("children"))["_birth_lo"]
    ep = ext.canonical("episodes").sort_values(["child_id", "removal_date"], kind="mergesort").reset_index(drop=True)
    ep["birth_date"] = ep["child_id"].map(ch)
    ep["b18"] = ep["birth_date"] + pd.DateOffset(years=18)
    ep["year"] = ep["removal_date"].dt.year
    stay = (ep["discharge_date"] - ep["removal_date"]).dt.days
    base = ep[ep["birth_date"].notna() & (ep["removal_date"] < ep["b18"]) & ~(stay < 8).fillna(False)]
    base = base.drop_duplicates(["child_id", "year"], keep="first")
    w12 = pd.Timedelta(days=oc.window_days(12))
    out = []

    # P1: entries in year Y need 12 months of follow-up after the end of Y
    p1 = base[pd.to_datetime(base["year"].astype(str) + "-12-31") + w12 <= ex].copy()
    reason = p1["discharge_reason"].astype("string")
    perm = reason.isin(list(oc.PERMANENCY_REASONS)).fillna(False).to_numpy(bool)
    dis = p1["discharge_date"]
    p1["p1"] = perm & (dis <= p1["removal_date"] + w12).fillna(False).to_numpy(bool) & (dis < p1["b18"]).fillna(False).to_numpy(bool)
    p1["served"] = _served_during(p1, ext, "removal_date", p1["discharge_date"].fillna(ex + pd.Timedelta(days=1)))
    out.append(_rates(p1, "P1 permanency in 12 months (entries)", "p1"))

    # P4: entries in Y exiting within 12 months; re-entries observed through Y + 2
    p4 = base[pd.to_datetime(base["year"].astype(str) + "-12-31") + 2 * w12 <= ex].copy()
    reason = p4["discharge_reason"].astype("string")
    exit_ok = (
        reason.isin(list(_P4_EXITS)).fillna(False).to_numpy(bool)
        & (p4["discharge_date"] <= p4["removal_date"] + w12).fillna(False).to_numpy(bool)
        & (p4["discharge_date"] < p4["b18"]).fillna(False).to_numpy(bool)
    )
    p4 = p4[exit_ok].copy()
    nxt = oc.first_on_or_after(
        p4[["child_id", "discharge_date"]].rename(columns={"discharge_date": "removal_date"}), ep[["child_id", "removal_date"]], "child_id", "removal_date", strict=True
    )
    p4["p4"] = (nxt <= p4["discharge_date"] + w12).fillna(False).to_numpy(bool)
    p4["served"] = _served_during(p4, ext, "removal_date", p4["discharge_date"])
    out.append(_rates(p4, "P4 re-entry within 12 months", "p4"))

    # S2: victims in year Y, recurrence within 12 months of the initial report
    rep = ext.canonical("reports")
    if not rep.empty:
        q = oc.qualifying_reports(rep)
        q["birth_date"] = q["child_id"].map(ch)
        q["year"] = q["report_date"].dt.year
        s2 = q[~(q["report_date"] >= q["birth_date"] + pd.DateOffset(years=18)).fillna(False)]
        s2 = s2.drop_duplicates(["child_id", "year"], keep="first")
        s2 = s2[pd.to_datetime(s2["year"].astype(str) + "-12-31") + w12 <= ex].copy()
        rec = oc.recurrence_after(s2.rename(columns={"report_date": "_start"}).assign(report_date=s2["report_date"]), "_start", q)
        s2["s2"] = (rec <= s2["report_date"] + w12).fillna(False).to_numpy(bool)
        s2["served"] = _served_during(s2, ext, "report_date", s2["report_date"] + w12)
        out.append(_rates(s2, "S2 recurrence within 12 months", "s2"))
    res = pd.concat(out, ignore_index=True)
    if years is not None:
        res = res[res["year"].isin(years)]
    return res.sort_values(["indicator", "year", "arm"], kind="mergesort").reset_index(drop=True)
