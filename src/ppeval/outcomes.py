"""Outcome definitions: time to event with censoring and competing exits, and window rates.

Every outcome is measured from a start date (the unit's index date, or the discharge for
re-entry and in-care recurrence) and stored as

* ``<name>_days``: days from the start to the event, the competing event or censoring;
* ``<name>_status``: 0 censored, 1 event, 2 competing event;
* a window boolean (``reunified_12m``, ``tpr_24m``, ...) that is missing unless the whole
  window lies on or before the extract date (a unit not yet followed for 12 months has no
  12-month rate; it is counted in the sample flow instead).

A window of *w* months is ``w * 365 // 12`` days (12 months = 365 days, 24 months = 730).

=================  ==========================================  ====================  ===================
outcome            event                                       competing             censored at
=================  ==========================================  ====================  ===================
reunification      discharge with a reason in the reunified set any other discharge  extract date, 18th birthday
permanency         discharge to reunification, relative,        other discharges     extract date, 18th birthday
                   adoption or guardianship
tpr                TPR (either parent by default)               discharge before TPR extract date
reentry            next removal after a reunification           18th birthday        extract date
recurrence         substantiated report > 14 days after the     18th birthday        extract date
                   previous substantiated report
removal            first removal after the index (prevention)   18th birthday        extract date
time_in_care       days in out-of-home care within the window
=================  ==========================================  ====================  ===================

A discharge on or after the 18th birthday is not a permanency exit (CFSR): the unit is
censored at the birthday.

Examples
--------
>>> window_days(12), window_days(24)
(365, 730)
>>> window_column("reunification", 12)
'reunified_12m'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import PERMANENCY_REASONS

#: Outcomes measured from the index date in each design.
IN_CARE_OUTCOMES = ("reunification", "permanency", "tpr", "reentry", "recurrence", "time_in_care")
PREVENTION_OUTCOMES = ("removal", "recurrence")

_WINDOW_PREFIX = {
    "reunification": "reunified",
    "permanency": "permanency",
    "tpr": "tpr",
    "reentry": "reentry",
    "recurrence": "recurrence",
    "removal": "removed",
    "time_in_care": "days_in_care",
}

DEFAULT_WINDOWS = {
    "reunification": [12, 24],
    "permanency": [12],
    "tpr": [24],
    "reentry": [12, 24],
    "recurrence": [12],
    "removal": [12],
    "time_in_care": [12],
}

#: Reports less than this many days after the previous substantiated report are the same
#: incident, not a recurrence (CFSR S2).
RECURRENCE_GAP_DAYS = 14


def window_days(months: int) -> int:
    """Length in days of a window of ``months`` months (12 months = 365 days)."""
    return int(months) * 365 // 12


def window_column(outcome: str, months: int) -> str:
    """Name of the window boolean, e.g. ``reunified_12m``."""
    return f"{_WINDOW_PREFIX[outcome]}_{int(months)}m"


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days.astype("Int64")


def time_to_event(
    start: pd.Series,
    event_date: pd.Series,
    competing_date: pd.Series,
    censor_date: pd.Series,
) -> tuple[pd.Series, pd.Series]:
    """Days and status (0 censored, 1 event, 2 competing) from three candidate dates.

    The earliest of the event, the competing event and censoring wins; an event on the
    censoring date counts (it was observed), a competing event on the same day as the
    event loses to the event. Missing dates never happen.

    Examples
    --------
    >>> s = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-01"]))
    >>> d, st = time_to_event(s, pd.Series(pd.to_datetime(["2020-03-01", None])),
    ...                       pd.Series(pd.to_datetime([None, "2020-02-01"])),
    ...                       pd.Series(pd.to_datetime(["2021-01-01", "2021-01-01"])))
    >>> d.tolist(), st.tolist()
    ([60, 31], [1, 2])
    """
    far = pd.Timestamp.max.normalize()
    ev = event_date.fillna(far)
    co = competing_date.fillna(far)
    ce = censor_date
    status = np.where((ev <= co) & (ev <= ce), 1, np.where((co < ev) & (co <= ce), 2, 0))
    end = np.where(status == 1, ev, np.where(status == 2, co, ce))
    end = pd.Series(pd.to_datetime(end), index=start.index)
    days = _days(end, start).clip(lower=0)
    return days, pd.Series(status, index=start.index, dtype="Int64")


def censor_at(days: pd.Series, status: pd.Series, censor_days: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Censor a time to event earlier, at ``censor_days`` after its start (missing = no censoring).

    As in :func:`time_to_event`, an event or competing exit on the censoring day counts.
    Returns the new days, the new status and whether each row was cut short (a row whose
    clock had not started, such as a re-entry clock of a unit never reunified, is left alone).

    Examples
    --------
    >>> d, s, cut = censor_at(pd.Series([30, 200, 50], dtype="Int64"), pd.Series([1, 1, 0], dtype="Int64"),
    ...                       pd.Series([100.0, 100.0, None]))
    >>> d.tolist(), s.tolist(), cut.tolist()
    ([30, 100, 50], [1, 0, 0], [False, True, False])
    """
    c = pd.Series(np.asarray(censor_days, dtype=float), index=days.index).clip(lower=0)
    d = days.astype("Float64")
    cut = (d.notna() & c.notna() & (d > c)).fillna(False).astype(bool)
    new_days = days.copy()
    new_status = status.copy()
    new_days[cut] = c[cut].round().astype("int64").to_numpy()
    new_status[cut] = 0
    return new_days, new_status, cut


def window_flag(days: pd.Series, status: pd.Series, start: pd.Series, extract_date: pd.Timestamp, months: int) -> pd.Series:
    """True if the event happened within the window, missing if the window is not fully observed."""
    w = window_days(months)
    observed = start + pd.Timedelta(days=w) <= extract_date
    flag = (status == 1) & (days <= w)
    out = flag.astype("boolean")
    out[~observed.fillna(False) | start.isna()] = pd.NA
    return out


def first_on_or_after(
    keys: pd.DataFrame, events: pd.DataFrame, key: str, date: str, strict: bool = False
) -> pd.Series:
    """For each row of ``keys`` the first ``events[date]`` of the same ``key`` on/after ``keys[date]``.

    A sorted as-of merge: O(n log n), no loop over units. ``strict`` takes only events
    strictly after the date.
    """
    out = pd.Series(pd.NaT, index=keys.index, dtype="datetime64[ns]")
    have = keys[date].notna()
    if not have.any() or events.empty:
        return out
    left = keys.loc[have, [key, date]].rename(columns={date: "_at"}).copy()
    left["_row"] = np.arange(len(left))
    left = left.sort_values("_at", kind="mergesort")
    right = events[[key, date]].dropna().rename(columns={date: "_at"})
    right = right.sort_values("_at", kind="mergesort")
    right["_found"] = right["_at"]
    merged = pd.merge_asof(
        left, right, on="_at", by=key, direction="forward", allow_exact_matches=not strict
    )
    merged = merged.sort_values("_row")
    out.loc[have] = merged["_found"].to_numpy()
    return out


def qualifying_reports(reports: pd.DataFrame) -> pd.DataFrame:
    """Substantiated reports that count as a new incident (more than 14 days after the previous one).

    The gap is measured from the previous substantiated report of the same child, whether
    or not that one counted (CFSR S2: reports within 14 days are the same incident).
    """
    sub = reports.loc[reports["substantiated"].fillna(False).astype(bool), ["child_id", "report_date"]]
    sub = sub.dropna().drop_duplicates().sort_values(["child_id", "report_date"], kind="mergesort")
    gap = sub.groupby("child_id", sort=False)["report_date"].diff().dt.days
    sub = sub.assign(_counts=gap.isna() | (gap > RECURRENCE_GAP_DAYS))
    return sub


def recurrence_after(units: pd.DataFrame, start_col: str, qualifying: pd.DataFrame) -> pd.Series:
    """Date of the first recurrence after ``units[start_col]``.

    A report counts if it is dated after the start and more than 14 days after the previous
    substantiated report (so a report 10 days after the index report is the same incident).
    """
    later = qualifying.loc[qualifying["_counts"], ["child_id", "report_date"]]
    keys = units[["child_id", start_col]].rename(columns={start_col: "report_date"})
    return first_on_or_after(keys, later, "child_id", "report_date", strict=True)


def days_in_care_within(
    units: pd.DataFrame, episodes: pd.DataFrame, start_col: str, months: int, extract_date: pd.Timestamp
) -> pd.Series:
    """Days in out-of-home care, over all of the child's episodes, within ``[start, start + window)``.

    Missing where the window is not fully observed.
    """
    w = pd.Timedelta(days=window_days(months))
    u = units[["child_id", start_col]].rename(columns={start_col: "_start"})
    u = u.assign(_unit=np.arange(len(u)))
    ep = episodes[["child_id", "removal_date", "discharge_date"]]
    m = u.merge(ep, on="child_id", how="left")
    lo = np.maximum(m["removal_date"], m["_start"])
    hi = np.minimum(m["discharge_date"].fillna(extract_date), m["_start"] + w)
    days = (hi - lo).dt.days.clip(lower=0).fillna(0)
    total = days.groupby(m["_unit"].to_numpy()).sum().reindex(np.arange(len(u)), fill_value=0)
    out = pd.Series(total.to_numpy(), index=units.index, dtype="Float64").round().astype("Int64")
    observed = units[start_col] + w <= extract_date
    out[~observed.fillna(False)] = pd.NA
    return out


def reunified_set(reasons: list[str] | tuple[str, ...]) -> frozenset[str]:
    return frozenset(reasons)


def permanency_set(reunified: frozenset[str]) -> frozenset[str]:
    return PERMANENCY_REASONS | reunified
