"""The analysis cohort: units, treatment, index dates without immortal time, covariates, outcomes.

Designs
-------
``in_care`` (Iowa Parent Partner, Parents for Parents)
    Units are removals in an entry window (the first removal in the window per child by
    default). Stays under 8 days and removals at age 18 or over are excluded (CFSR rules).
    A unit is *treated* when a parent of its family enrolled during the episode.
``prevention`` (Kentucky START, Parents Anonymous)
    Units are children with an index maltreatment report in the window who were not in care
    on the report date. A unit is treated when its family enrolled within
    ``enrollment_window_days`` of the report and before any removal.

Index dates without immortal time
---------------------------------
A treated unit's clock starts at enrolment, ``index_delay_days`` after its removal (or
index report). Starting it at removal would credit the program with the days before
enrolment, in which a treated unit cannot, by definition, have left care: immortal time,
which makes any program look as if it speeds reunification. A comparison unit may therefore
serve for a treated unit enrolled *d* days after removal only if it was still in care (and
not enrolled) *d* days after its own removal; its index is then its removal date + *d*.

The cohort gives the matching stage what it needs for this rule:

* ``index_delay_days``: the treated unit's delay (0 for comparison units until matched);
* ``eligible_until_days``: days from removal until the unit stops being at risk (discharge,
  18th birthday, extract date); a comparison unit is eligible for delay *d* iff this is > *d*;
* ``delay_band``: the treated delay in bands of ``delay_band_days`` (usable as an exact
  stratum);
* :meth:`Cohort.reindex`: recomputes every outcome column of rows whose
  ``index_delay_days`` was changed (the matching stage passes it forward as a callable).

Comparison units are the units *not yet* enrolled at the delay, not those that never enrol
(risk-set matching, Li, Propert & Rosenbaum 2001): restricting them to families that never
enrol would condition on the future, since a family whose children go home early never gets
the chance to enrol. So each served unit appears once more as a comparison row
(``served_later``) eligible only before its enrolment, and a served unit's sibling who went
home before the family enrolled stays a comparison unit for the delays it was in care. Both
carry ``match_family`` = family id + ``"~before-enrolment"``: siblings are matched as a block,
and a family's before-enrolment block is never mixed with its treated block. The matching
stage takes treated units in order of their delay, so that whether a comparison unit is
still free does not depend on how long it stays in care (see :mod:`ppeval.matching`).

A served unit's comparison row is followed only until its enrolment (``enrolled_after_days``
after its anchor date; ``censor_at_enrolment``): from then on its course is a served one.
Its times to event are censored on that day and a window it had not completed is missing;
the estimate stage weights the rows still followed by the inverse probability of not yet
having enrolled (:class:`ppeval.estimate.EnrolmentCensoring`), so the comparison arm stands
for "not served" rather than "served later".

With ``unit="family"``, a family's outcome at an index counts only the children still at
risk then (in care, for the in-care design): a treated family is its children in care at the
enrolment, a comparison family at a pseudo-index its children in care at that delay. A
family is eligible while any of its children is.

Ages known only as an interval
------------------------------
A child with no birth date but an age at a report (NCANDS ``ChAge``; the children columns
``birth_date_min``/``birth_date_max``) has its birth in an interval. Where only the age
matters the interval is used: the rule "under 18 at removal/report" is decided only when the
whole interval is on one side of the limit; a unit whose interval straddles it is left out
(it may be too old) and counted in its own flow step. The age covariate is the age at the
interval's midpoint, with its bounds in ``age_at_<when>_low``/``_high`` (age subgroups are
decided on them). A unit is followed no further than its earliest possible 18th birthday
(conservative: no event of a possible adult counts), and the units so shortened are counted
(flow rows of kind ``age_interval``; :meth:`SampleFlow.age_intervals`).

:meth:`Cohort.naive` gives the flawed design that starts everyone at removal, for
demonstration and for tests that show the bias.

Examples
--------
>>> import ppeval
>>> ext = ppeval.load_extract("data/synthetic/eval.toml")          # doctest: +SKIP
>>> cohort = build_cohort(ext, entry_from="2016-01-01", entry_to="2021-12-31")  # doctest: +SKIP
>>> cohort.flow.to_frame()                                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from . import outcomes as oc
from .errors import ConfigError, DataError
from .extract import Extract
from .schema import REMOVAL_REASONS

DESIGNS = ("in_care", "prevention")
UNITS = ("child", "family")

# Columns the outcome engine needs to recompute outcomes at a new index date.
_ENGINE_COLS = ("child_id", "anchor_date", "_discharge_date", "_discharge_reason", "_tpr_date", "_birthday18")


class SampleFlow:
    """Counts of units per arm at every step from the extract to the analysis cohort.

    ``kind`` is ``"step"`` for the successive restrictions and ``"window"`` for units left
    out of a fixed-window rate because the window is not yet observed at the extract date.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        #: how the program roster links to the extract, in families (see :meth:`linkage_frame`)
        self.linkage: dict[str, int] = {}
        #: rows of the extract with a validation problem that this analysis never uses: the
        #: problem was a warning, not an error (set from the validation report)
        self.outside_rows: int = 0

    def age_intervals(self) -> dict[str, int]:
        """Units whose birth is known only as an interval (an age at a report), and how handled.

        Keys: ``units`` (in the cohort, before matching and its risk-set rows; age covariate
        taken at the interval's midpoint), ``straddling``
        (left out: the interval straddles the age limit, so the age rule cannot be decided),
        ``followed_to_earliest_18th_birthday`` (follow-up ended at the earliest possible 18th
        birthday). Empty when every unit has a birth date.
        """
        out: dict[str, int] = {}
        for r in self.rows:
            if r["kind"] == "age_interval":
                key = "units" if r["step"].startswith("units whose birth") else "followed_to_earliest_18th_birthday"
                out[key] = r["treated"] + r["comparison"]
        steps = [r for r in self.rows if r["kind"] == "step"]
        for i, r in enumerate(steps):
            if r["step"].startswith("age at ") and " decided against " in r["step"] and i:
                prev = steps[i - 1]
                out["straddling"] = prev["treated"] + prev["comparison"] - r["treated"] - r["comparison"]
        return out

    def add(self, step: str, treated: pd.Series, kind: str = "step", keep: pd.Series | None = None) -> None:
        """Record the units (``keep``, default all) of a step, split by the ``treated`` flag."""
        t = treated.astype(bool) if keep is None else treated[keep.astype(bool)].astype(bool)
        self.rows.append({"step": step, "kind": kind, "treated": int(t.sum()), "comparison": int((~t).sum())})

    def add_counts(self, step: str, treated: int, comparison: int, kind: str = "step") -> None:
        self.rows.append({"step": step, "kind": kind, "treated": int(treated), "comparison": int(comparison)})

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=["step", "kind", "treated", "comparison"])
        df["total"] = df["treated"] + df["comparison"]
        return df

    def linkage_frame(self) -> pd.DataFrame:
        """The program roster's families: on the roster, linked to a child, served in the cohort.

        ``share`` is of the families on the roster. Empty when there is no roster.
        """
        labels = {
            "roster_families": "families on the program roster",
            "linked_families": "linked to a child in the extract",
            "served_in_cohort": "with a unit counted as served in the analysis cohort",
        }
        rows = [{"step": labels[k], "families": v} for k, v in self.linkage.items() if k in labels]
        df = pd.DataFrame(rows, columns=["step", "families"])
        total = self.linkage.get("roster_families", 0)
        df["share"] = df["families"] / total if total else np.nan
        return df

    def to_records(self) -> list[dict[str, Any]]:
        return [{"step": r["step"], "treated": r["treated"], "comparison": r["comparison"]} for r in self.rows]

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)

    def __repr__(self) -> str:
        return self.to_frame().to_string(index=False)


@dataclass
class _Engine:
    """What is needed to compute outcomes at any index date (kept off the unit rows)."""

    design: str
    extract_date: pd.Timestamp
    episodes: pd.DataFrame  # all episodes: child_id, removal_date, discharge_date
    qualifying: pd.DataFrame  # substantiated reports with the 14-day flag
    reunified: frozenset[str]
    windows: dict[str, list[int]]
    censor_at_enrolment: bool = True

    def _enrolment_censor(self, u: pd.DataFrame) -> pd.Series | None:
        """Date on which a served unit's comparison row stops following its unserved course:
        its enrolment (NaT for other comparison rows and for treated rows)."""
        if not self.censor_at_enrolment or "enrolled_after_days" not in u or "treated" not in u:
            return None
        days = u["enrolled_after_days"].to_numpy(dtype="float64", na_value=np.nan)
        has = np.isfinite(days) & ~u["treated"].astype(bool).to_numpy()
        e = u["anchor_date"] + pd.to_timedelta(np.where(has, days, 0).astype("int64"), unit="D")
        e = e.where(has)
        return e if e.notna().any() else None

    def compute(self, u: pd.DataFrame) -> pd.DataFrame:
        """Outcome columns for child rows ``u`` (needs ``index_date`` and the engine columns)."""
        ex = self.extract_date
        start = u["index_date"]
        b18 = u["_birthday18"]
        censor = b18.where(b18 < ex, ex)
        out: dict[str, pd.Series] = {}
        enrol = self._enrolment_censor(u)
        if self.design == "in_care":
            dis = u["_discharge_date"].where(u["_discharge_date"] < b18)
            dis = dis.where(dis <= ex)
            reason = u["_discharge_reason"].astype("string")
            in_r = reason.isin(list(self.reunified)).fillna(False).to_numpy(bool)
            in_p = reason.isin(list(oc.permanency_set(self.reunified))).fillna(False).to_numpy(bool)
            for name, is_event in (("reunification", in_r), ("permanency", in_p)):
                if name in self.windows:
                    days, status = oc.time_to_event(start, dis.where(is_event), dis.where(~is_event), censor)
                    out[f"{name}_days"], out[f"{name}_status"] = days, status
            if "tpr" in self.windows:
                tpr = u["_tpr_date"].where(u["_tpr_date"] <= ex)
                # TPR is followed past the 18th birthday only in principle; a discharge first competes.
                days, status = oc.time_to_event(start, tpr, u["_discharge_date"].where(u["_discharge_date"] <= ex), pd.Series(ex, index=u.index))
                out["tpr_days"], out["tpr_status"] = days, status
            reunified_on = dis.where(in_r)
            if "reentry" in self.windows or "recurrence" in self.windows:
                at_risk = reunified_on.notna()
                nxt = oc.first_on_or_after(
                    pd.DataFrame({"child_id": u["child_id"], "removal_date": reunified_on}),
                    self.episodes[["child_id", "removal_date"]],
                    "child_id",
                    "removal_date",
                    strict=True,
                )
                if "reentry" in self.windows:
                    days, status = oc.time_to_event(reunified_on, nxt, b18, pd.Series(ex, index=u.index))
                    out["reentry_days"] = days.where(at_risk)
                    out["reentry_status"] = status.where(at_risk)
                    out["_reentry_start"] = reunified_on
                if "recurrence" in self.windows:
                    rec = oc.recurrence_after(
                        pd.DataFrame({"child_id": u["child_id"], "_start": reunified_on}), "_start", self.qualifying
                    )
                    days, status = oc.time_to_event(reunified_on, rec, b18, pd.Series(ex, index=u.index))
                    out["recurrence_days"] = days.where(at_risk)
                    out["recurrence_status"] = status.where(at_risk)
                    out["_recurrence_start"] = reunified_on
            if "time_in_care" in self.windows:
                end_care = u["_discharge_date"].where(u["_discharge_date"] <= ex)
                days, status = oc.time_to_event(start, end_care, pd.Series(pd.NaT, index=u.index, dtype="datetime64[ns]"), pd.Series(ex, index=u.index))
                out["time_in_care_days"], out["time_in_care_status"] = days, status
        else:
            if "removal" in self.windows:
                rem = oc.first_on_or_after(
                    pd.DataFrame({"child_id": u["child_id"], "removal_date": start}),
                    self.episodes[["child_id", "removal_date"]],
                    "child_id",
                    "removal_date",
                )
                days, status = oc.time_to_event(start, rem, b18, pd.Series(ex, index=u.index))
                out["removal_days"], out["removal_status"] = days, status
            if "recurrence" in self.windows:
                # a report within 14 days of the index report is the same incident
                rec_from = np.maximum(start, u["anchor_date"] + pd.Timedelta(days=oc.RECURRENCE_GAP_DAYS))
                rec = oc.recurrence_after(pd.DataFrame({"child_id": u["child_id"], "_start": rec_from}), "_start", self.qualifying)
                days, status = oc.time_to_event(start, rec, b18, pd.Series(ex, index=u.index))
                out["recurrence_days"], out["recurrence_status"] = days, status
        frame = pd.DataFrame(out, index=u.index)
        # a served unit's comparison row is followed only until its enrolment: after that its
        # course is a served one, and keeping it would compare "enrol now" with "enrol later"
        # instead of with "not served" (sequential target-trial emulation). The estimate stage
        # weights the rows still followed by the inverse probability of not yet being censored.
        cut: dict[str, pd.Series] = {}
        if enrol is not None:
            for name in self.windows:
                if f"{name}_days" not in frame:
                    continue
                clock = frame[f"_{name}_start"] if f"_{name}_start" in frame else start
                c = (enrol - clock).dt.days
                frame[f"{name}_days"], frame[f"{name}_status"], cut[name] = oc.censor_at(
                    frame[f"{name}_days"], frame[f"{name}_status"], c)
        for name, months_list in self.windows.items():
            for months in months_list:
                col = oc.window_column(name, months)
                if name == "time_in_care":
                    frame[col] = oc.days_in_care_within(u, self.episodes, "index_date", months, ex)
                elif name in ("reentry", "recurrence") and f"_{name}_start" in frame:
                    frame[col] = oc.window_flag(frame[f"{name}_days"], frame[f"{name}_status"], frame[f"_{name}_start"], ex, months)
                elif f"{name}_days" in frame:
                    frame[col] = oc.window_flag(frame[f"{name}_days"], frame[f"{name}_status"], start, ex, months)
                else:
                    continue
                if name in cut:
                    # censored by the enrolment before the window closed: not observed
                    frame.loc[(cut[name] & (frame[f"{name}_days"] < oc.window_days(months))).to_numpy(bool), col] = pd.NA
        return frame.drop(columns=[c for c in frame.columns if c.startswith("_")])


def _aggregate_family(child: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Family rows from child rows: an outcome is reached when any (or all) children reach it.

    ``child`` holds the unit key in ``family_id`` and each child's outcome columns.
    """
    out: dict[str, pd.Series] = {}
    names = sorted({c[: -len("_status")] for c in child.columns if c.endswith("_status")})
    for name in names:
        days = child[f"{name}_days"].astype("float")
        status = child[f"{name}_status"].astype("float")
        if rule == "any":
            ev_days = days.where(status == 1)
            first_event = ev_days.groupby(child["family_id"]).min()
            last = days.groupby(child["family_id"]).max()
            # without an event the family leaves risk with its last child; that child's status
            last_status = (
                child.assign(_d=days, _s=status)
                .sort_values(["family_id", "_d", "_s"], kind="mergesort")
                .groupby("family_id")["_s"]
                .last()
            )
            fam_days = first_event.fillna(last)
            fam_status = np.where(first_event.notna(), 1, last_status)
        else:
            all_event = (status == 1).groupby(child["family_id"]).all()
            comp_first = days.where(status == 2).groupby(child["family_id"]).min()
            cens_first = days.where(status == 0).groupby(child["family_id"]).min()
            last = days.groupby(child["family_id"]).max()
            fam_status = np.where(all_event, 1, np.where(comp_first.notna(), 2, 0))
            fam_days = pd.Series(np.where(all_event, last, np.where(comp_first.notna(), comp_first, cens_first)), index=last.index)
        all_missing = status.isna().groupby(child["family_id"]).all()
        fam_days = pd.Series(fam_days, index=all_missing.index).astype("Float64").round().astype("Int64")
        fam_status = pd.Series(fam_status, index=all_missing.index).astype("Float64").astype("Int64")
        fam_days[all_missing] = pd.NA
        fam_status[all_missing] = pd.NA
        out[f"{name}_days"], out[f"{name}_status"] = fam_days, fam_status
    flags = [c for c in child.columns if c.endswith("m") and c.rsplit("_", 1)[-1][:-1].isdigit() and not c.startswith("days_in_care")]
    for col in flags:
        v = child[col].astype("boolean")
        anyv = v.fillna(False).groupby(child["family_id"]).any()
        allv = v.fillna(True).groupby(child["family_id"]).all()
        has_na = v.isna().groupby(child["family_id"]).any()
        has_obs = v.notna().groupby(child["family_id"]).any()
        if rule == "any":
            res = anyv.astype("boolean")
            res[~anyv & has_na] = pd.NA
        else:
            res = (allv & ~has_na).astype("boolean")
            res[allv & has_na] = pd.NA
        res[~has_obs] = pd.NA
        out[col] = res
    for col in [c for c in child.columns if c.startswith("days_in_care_")]:
        out[col] = child.groupby("family_id")[col].max()
    return pd.DataFrame(out)


@dataclass
class Cohort:
    """The analysis cohort: one row per unit, with its sample flow.

    Attributes
    ----------
    data : DataFrame
        One row per unit: ``unit_id``, ``child_id`` (child units), ``family_id``, ``treated``,
        ``index_date``, ``index_delay_days``, ``eligible_until_days``, ``delay_band``,
        covariates, and the outcome columns (``<name>_days``, ``<name>_status``, windows).
    flow : SampleFlow
        Every step from extract to cohort with counts per arm.
    covariates : list of str
        Covariates at index, ready for the propensity model: columns of ``data``. A family
        unit has the family-level ones (``youngest_age_at_removal``, ``children_in_care`` or
        ``children_in_report``; see :func:`family_covariates`).
    outcomes : dict
        Outcome name -> list of window lengths in months.
    """

    data: pd.DataFrame
    flow: SampleFlow
    design: str
    unit: str
    extract_date: pd.Timestamp
    covariates: list[str]
    outcomes: dict[str, list[int]]
    settings: dict[str, Any] = field(default_factory=dict)
    _engine: _Engine | None = field(default=None, repr=False)
    _children: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def n_treated(self) -> int:
        return int(self.data["treated"].sum())

    @property
    def n_comparison(self) -> int:
        """Comparison units (not counting served units' rows from before their enrolment)."""
        return int((~self.data["treated"] & ~self.data["served_later"]).sum())

    def outcome_columns(self) -> list[str]:
        cols = []
        for name, months in self.outcomes.items():
            if f"{name}_days" in self.data:
                cols += [f"{name}_days", f"{name}_status"]
            cols += [oc.window_column(name, m) for m in months if oc.window_column(name, m) in self.data]
        return cols

    def reindex(self, df: pd.DataFrame) -> pd.DataFrame:
        """Recompute the outcome columns of ``df`` (rows of :attr:`data`) from their ``index_delay_days``.

        The matching stage calls this after giving each matched comparison unit the delay of
        its treated unit; rows keep every other column.
        """
        assert self._engine is not None and self._children is not None
        df = df.copy()
        delay = pd.to_timedelta(df["index_delay_days"].astype("float").fillna(0), unit="D")
        df["index_date"] = df["anchor_date"] + delay
        if self.unit == "child":
            new = self._engine.compute(df)
        else:
            kids = self._children[self._children["_unit"].isin(df["unit_id"])].copy()
            by_unit = df.set_index("unit_id")
            kids["index_date"] = kids["_unit"].map(by_unit["index_date"])
            kids = _at_risk(kids, kids["_unit"].map(by_unit["index_delay_days"].astype("float").fillna(0)))
            keyed = pd.concat([kids[["_unit"]].rename(columns={"_unit": "family_id"}), self._engine.compute(kids)], axis=1)
            new = _aggregate_family(keyed, self.settings["family_outcome"])
            new = new.reindex(df["unit_id"]).set_index(df.index)
        for col in new.columns:
            df[col] = new[col]
        return df

    def naive(self) -> pd.DataFrame:
        """The flawed design: every unit, treated or not, starts at removal (immortal time).

        Only for demonstrating the bias; never use it for an estimate.
        """
        df = self.data[~self.data["served_later"]].copy()
        df["index_delay_days"] = 0
        return self.reindex(df).reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """Units and events per arm for each outcome (aggregates only)."""
        rows = []
        arms = self.data["treated"].astype(bool)
        own = ~self.data["served_later"].astype(bool)
        for name in self.outcomes:
            col = f"{name}_status"
            if col not in self.data:
                continue
            for arm, mask in (("treated", arms), ("comparison", ~arms & own)):
                s = self.data.loc[mask, col]
                rows.append({"outcome": name, "arm": arm, "at_risk": int(s.notna().sum()), "events": int((s == 1).sum()), "competing": int((s == 2).sum())})
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        return (
            f"<p><b>Cohort</b>: {self.design} design, unit = {self.unit}; {self.n_treated} treated, "
            f"{self.n_comparison} comparison units</p>" + self.flow.to_frame().to_html(index=False)
        )


def _as_ts(value: Any) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


def _family_map(ext: Extract) -> pd.Series:
    """child_id -> family_id: the crosswalk first, then children.family_id, else the child itself."""
    ch = ext.children
    fam = pd.Series(ch["child_id"].astype("string").to_numpy(), index=ch["child_id"].astype("string").to_numpy(), dtype="string")
    if "family_id" in ch:
        fam = ch["family_id"].astype("string").set_axis(fam.index).fillna(fam)
    if len(ext.families):
        cw = ext.families.dropna(subset=["child_id", "family_id"]).drop_duplicates("child_id", keep="first")
        fam = pd.concat([fam[~fam.index.isin(cw["child_id"])], pd.Series(cw["family_id"].astype("string").to_numpy(), index=cw["child_id"].astype("string").to_numpy())])
    return fam[~fam.index.duplicated(keep="first")]


def _enrollments(ext: Extract, family_of: pd.Series) -> pd.DataFrame:
    part = ext.canonical("participation")
    if part.empty:
        return pd.DataFrame({"family_id": pd.Series(dtype="string"), "enrolled_date": pd.Series(dtype="datetime64[ns]")})
    fam = part["family_id"].astype("string") if "family_id" in part else pd.Series(pd.NA, index=part.index, dtype="string")
    if "child_id" in part:
        by_child = part["child_id"].astype("string").map(family_of)
        fam = fam.fillna(by_child).fillna(part["child_id"].astype("string"))
    keep = ["enrolled_date"] + [c for c in ("hours", "contacts", "parent_role", "component", "exit_date") if c in part]
    out = part[keep].copy()
    out.insert(0, "family_id", fam)
    return out.dropna(subset=["family_id", "enrolled_date"])


def _prior_substantiated(units: pd.DataFrame, reports: pd.DataFrame, at_col: str) -> pd.Series:
    """Substantiated reports of the child dated more than 14 days before ``at_col``."""
    if reports.empty:
        return pd.Series(0, index=units.index, dtype="int64")
    sub = reports.loc[reports["substantiated"].fillna(False).astype(bool), ["child_id", "report_date"]].dropna()
    sub = sub.sort_values(["child_id", "report_date"])
    sub["_n"] = sub.groupby("child_id").cumcount() + 1
    keys = units[["child_id", at_col]].copy()
    keys["report_date"] = keys[at_col] - pd.Timedelta(days=oc.RECURRENCE_GAP_DAYS + 1)
    keys["_row"] = np.arange(len(keys))
    merged = pd.merge_asof(keys.sort_values("report_date"), sub.sort_values("report_date"), on="report_date", by="child_id", direction="backward")
    return pd.Series(merged.sort_values("_row")["_n"].fillna(0).astype("int64").to_numpy(), index=units.index)


def _mark_enrolment(u: pd.DataFrame, cand: pd.DataFrame, counts: pd.Series, served_elsewhere: pd.Series) -> None:
    """Set ``treated``, the first enrolment's date and details, and ``_enrolled_before`` in place.

    ``cand`` pairs each unit (column ``index``) with its family's enrolments; ``counts`` marks
    the enrolments that make the unit treated, ``served_elsewhere`` those that rule it out
    as a comparison.
    """
    first = cand[counts].sort_values(["index", "enrolled_date"], kind="mergesort").drop_duplicates("index")
    u["treated"] = False
    u.loc[first["index"], "treated"] = True
    for col in ("enrolled_date", "hours", "contacts", "parent_role"):
        if col in first:
            u[col] = pd.Series(first[col].to_numpy(), index=first["index"].to_numpy()).reindex(u.index)
    u["_enrolled_before"] = False
    u.loc[cand.loc[served_elsewhere, "index"].unique(), "_enrolled_before"] = True


def _entry_window(u: pd.DataFrame, col: str, lo, hi, flow: SampleFlow, what: str, settings: dict, episode: str) -> pd.DataFrame:
    """Units whose ``col`` date is in the entry window (and the first per child), counted in the flow."""
    keep = pd.Series(True, index=u.index)
    if lo is not None:
        keep &= u[col] >= lo
    if hi is not None:
        keep &= u[col] <= hi
    flow.add(f"{what} in the entry window ({settings['entry_from'] or 'start'} to {settings['entry_to'] or 'end'})", u["treated"], keep=keep)
    u = u[keep]
    if episode == "first":
        u = u.drop_duplicates("child_id", keep="first")
        flow.add(f"first {'removal' if what == 'removed' else 'report'} in the window per child", u["treated"])
    return u


def build_cohort(
    ext: Extract,
    design: str = "in_care",
    entry_from: str | date | None = None,
    entry_to: str | date | None = None,
    unit: str = "child",
    episode: str = "first",
    min_stay_days: int = 8,
    max_age_at_removal: float = 18,
    reunified_reasons: list[str] | tuple[str, ...] = ("reunification",),
    family_outcome: str = "any",
    enrollment_window_days: int = 90,
    tpr_parent: str = "either",
    delay_band_days: int = 30,
    outcomes: dict[str, list[int]] | None = None,
    covariates: list[str] | None = None,
    risk_set: bool = True,
    exclude_served_elsewhere: bool = True,
    censor_at_enrolment: bool = True,
) -> Cohort:
    """Build the analysis cohort from an extract.

    Parameters
    ----------
    ext : Extract
        The canonical extract.
    design : {"in_care", "prevention"}
        See the module docstring.
    entry_from, entry_to : date-like, optional
        Entry window (removal date for ``in_care``, report date for ``prevention``), inclusive.
    unit : {"child", "family"}
        One row per child, or per family (an outcome is reached when ``family_outcome``
        = "any" or "all" of the family's children reach it).
    episode : {"first", "all"}
        First removal (or report) in the window per child, or every one.
    min_stay_days : int
        Completed stays shorter than this are excluded (CFSR: 8).
    max_age_at_removal : float
        Units this old or older at removal/report are excluded (18).
    reunified_reasons : sequence of str
        Discharge reasons that count as reunification (add "relative" if the agency does).
    enrollment_window_days : int
        Prevention design: enrolment within this many days after the index report.
    tpr_parent : {"either", "mother", "father", "both"}
        Whose termination of parental rights counts.
    delay_band_days : int
        Width of the enrolment-delay bands offered to matching as an exact stratum.
    outcomes : dict, optional
        Outcome -> window lengths in months; default every outcome of the design.
    covariates : list of str, optional
        Extra (user) columns of the children or episodes tables to carry as covariates.
    exclude_served_elsewhere : bool
        Leave out of the comparison pool units whose family was served before this removal
        (in care) or outside the enrolment window (prevention); default True. False keeps
        them, for a sensitivity analysis or to reproduce counts that include them.
    risk_set : bool
        Add each served unit enrolled after its removal once more as a comparison row
        (``served_later`` True, ``treated`` False) that is eligible only for delays before its
        own enrolment, and keep a served unit's siblings who left care before the family
        enrolled as comparison units (in the family's before-enrolment block): comparison
        units are those *not yet* enrolled at the delay, not those that never enrol (which
        would condition on the future). Default True; False gives the flawed design that
        takes comparisons only from families that never enrol.
    censor_at_enrolment : bool
        Follow a served unit's comparison row (``served_later``) only until its enrolment
        (``enrolled_after_days`` after its anchor date): its outcomes after that are those
        of a served family. Its times to event are censored on that day and a window it had
        not completed is missing; the
        estimate stage weights the rows still followed by the inverse probability of not yet
        being censored (:class:`ppeval.estimate.EnrolmentCensoring`). Default True; False
        keeps their later outcomes (the estimate then compares "enrol now" with "not yet
        enrolled", which is smaller than the effect of the program on the served).

    Returns
    -------
    Cohort

    Examples
    --------
    >>> cohort = build_cohort(ext, entry_from="2016-01-01", entry_to="2021-12-31")  # doctest: +SKIP
    >>> cohort.data[["treated", "reunified_12m"]].groupby("treated").mean()          # doctest: +SKIP
    """
    if design not in DESIGNS:
        raise ConfigError(f"cohort design must be one of {DESIGNS}, got {design!r}")
    if unit not in UNITS:
        raise ConfigError(f"cohort unit must be one of {UNITS}, got {unit!r}")
    if family_outcome not in ("any", "all"):
        raise ConfigError(f"family_outcome must be 'any' or 'all', got {family_outcome!r}")
    design_outcomes = oc.IN_CARE_OUTCOMES if design == "in_care" else oc.PREVENTION_OUTCOMES
    if outcomes is None:
        outcomes = {k: list(oc.DEFAULT_WINDOWS[k]) for k in design_outcomes}
    else:
        bad = [k for k in outcomes if k not in design_outcomes]
        if bad:
            raise ConfigError(f"outcome(s) {bad} are not defined for the {design} design; choose from {list(design_outcomes)}")
        outcomes = {k: [int(m) for m in (v or [])] for k, v in outcomes.items()}
    settings = {
        "design": design, "unit": unit, "episode": episode, "min_stay_days": min_stay_days,
        "max_age_at_removal": max_age_at_removal, "reunified_reasons": list(reunified_reasons),
        "family_outcome": family_outcome, "enrollment_window_days": enrollment_window_days,
        "tpr_parent": tpr_parent, "delay_band_days": delay_band_days,
        "censor_at_enrolment": bool(censor_at_enrolment),
        "entry_from": None if entry_from is None else str(pd.Timestamp(entry_from).date()),
        "entry_to": None if entry_to is None else str(pd.Timestamp(entry_to).date()),
    }
    ex = ext.extract_date
    family_of = _family_map(ext)
    enr = _enrollments(ext, family_of)
    episodes_all = ext.canonical("episodes").sort_values(["child_id", "removal_date"], kind="mergesort").reset_index(drop=True)
    reports = ext.canonical("reports")
    qualifying = oc.qualifying_reports(reports) if not reports.empty else pd.DataFrame(columns=["child_id", "report_date", "_counts"])
    children = _children_with_birth_bounds(ext.canonical("children"))
    flow = SampleFlow()
    lo, hi = _as_ts(entry_from), _as_ts(entry_to)

    if design == "in_care":
        u = episodes_all.copy()
        u["prior_removals"] = u.groupby("child_id").cumcount()
        u["anchor_date"] = u["removal_date"]
        u["family_id"] = u["child_id"].map(family_of).fillna(u["child_id"])
        # first enrolment of the family during the episode
        cand = u[["family_id", "removal_date", "discharge_date"]].reset_index().merge(enr, on="family_id")
        end = cand["discharge_date"].fillna(ex + pd.Timedelta(days=1))
        during = (cand["enrolled_date"] >= cand["removal_date"]) & (cand["enrolled_date"] < end) & (cand["enrolled_date"] <= ex)
        before = cand["enrolled_date"] < cand["removal_date"]
        _mark_enrolment(u, cand, during, before)
        flow.add("removal episodes in the extract", u["treated"])
        u = _entry_window(u, "removal_date", lo, hi, flow, "removed", settings, episode)
        when = "removal"
    else:
        if reports.empty:
            raise DataError("the prevention design needs a reports table (index maltreatment reports)")
        u = reports.dropna(subset=["report_date"]).sort_values(["child_id", "report_date"], kind="mergesort").reset_index(drop=True)
        u = u.drop_duplicates(["child_id", "report_date"])
        u["anchor_date"] = u["report_date"]
        u["family_id"] = u["child_id"].map(family_of).fillna(u.get("family_id", u["child_id"]).astype("string")).fillna(u["child_id"])
        cand = u[["family_id", "report_date"]].reset_index().merge(enr, on="family_id")
        within = (cand["enrolled_date"] >= cand["report_date"]) & (
            cand["enrolled_date"] <= cand["report_date"] + pd.Timedelta(days=enrollment_window_days)
        ) & (cand["enrolled_date"] <= ex)
        _mark_enrolment(u, cand, within, ~within & (cand["enrolled_date"] <= ex))
        flow.add("maltreatment reports in the extract (child, date)", u["treated"])
        u = _entry_window(u, "report_date", lo, hi, flow, "reported", settings, episode)
        # children already in care on the report date are not prevention cases
        last_removal = pd.merge_asof(
            u[["child_id", "report_date"]].reset_index().sort_values("report_date"),
            episodes_all[["child_id", "removal_date", "discharge_date"]].sort_values("removal_date"),
            left_on="report_date", right_on="removal_date", by="child_id", direction="backward",
        ).set_index("index").reindex(u.index)
        in_care = last_removal["removal_date"].notna() & (
            last_removal["discharge_date"].isna() | (last_removal["discharge_date"] > last_removal["report_date"])
        )
        flow.add("not in out-of-home care on the report date", u["treated"], keep=~in_care)
        u = u[~in_care]
        removals_before = pd.merge_asof(
            u[["child_id", "report_date"]].reset_index().sort_values("report_date"),
            episodes_all[["child_id", "removal_date"]].assign(_n=episodes_all.groupby("child_id").cumcount() + 1).sort_values("removal_date"),
            left_on="report_date", right_on="removal_date", by="child_id", direction="backward", allow_exact_matches=False,
        ).set_index("index").reindex(u.index)
        u["prior_removals"] = removals_before["_n"].fillna(0).astype("int64")
        # treated only if enrolled before any removal after the report
        rem_after = oc.first_on_or_after(u[["child_id", "report_date"]].rename(columns={"report_date": "removal_date"}), episodes_all, "child_id", "removal_date")
        removed_first = u["treated"] & rem_after.notna() & (rem_after < u["enrolled_date"])
        flow.add("treated: enrolled before any removal", u["treated"], keep=~removed_first)
        u = u[~removed_first]
        when = "report"

    # child attributes
    u = u.join(children[[c for c in children.columns if c not in u.columns or c == "county"]].rename(columns={"county": "_child_county"}), on="child_id")
    # birth known as a date, or only as an interval (an age at a report: NCANDS ChAge)
    has_child = u["_birth_lo"].notna() & u["_birth_hi"].notna()
    interval = has_child & (u["_birth_lo"] != u["_birth_hi"])
    any_interval = bool(interval.any())
    flow.add("child found in the children table with a birth date" + (" or an age" if any_interval else ""),
             u["treated"], keep=has_child)
    u = u[has_child].copy()
    age_col = "age_at_" + when
    # the age covariate of a unit with an interval is the age at the interval's midpoint
    mid = u["_birth_lo"] + (u["_birth_hi"] - u["_birth_lo"]) / 2
    u[age_col] = ((u["anchor_date"] - mid.dt.normalize()).dt.days / 365.25).round(4)
    # a rule on the age is decided only when the whole interval is on one side of the limit:
    # under the limit for sure when even the earliest possible birth is; at or over it for
    # sure when even the latest possible birth is. Calendar age: a child is 18 on the 18th
    # birthday (age in days / 365.25 is not)
    under_sure = _under_age(u["anchor_date"], u["_birth_lo"], max_age_at_removal)
    under_maybe = _under_age(u["anchor_date"], u["_birth_hi"], max_age_at_removal)
    if any_interval:
        u[f"{age_col}_low"] = ((u["anchor_date"] - u["_birth_hi"]).dt.days / 365.25).round(4)
        u[f"{age_col}_high"] = ((u["anchor_date"] - u["_birth_lo"]).dt.days / 365.25).round(4)
        u["_age_interval"] = u["_birth_lo"] != u["_birth_hi"]
        decided = under_sure | ~under_maybe
        # undecidable (the interval straddles the limit): possibly too old, so left out
        flow.add(f"age at {when} decided against {max_age_at_removal:g} (age interval not straddling the "
                 f"{max_age_at_removal:g}th birthday; straddling units left out)", u["treated"], keep=decided)
        u = u[decided]
        under_sure = under_sure[decided]
    flow.add(f"aged under {max_age_at_removal:g} at {when}", u["treated"], keep=under_sure)
    u = u[under_sure]
    if design == "in_care" and min_stay_days:
        stay = (u["discharge_date"] - u["removal_date"]).dt.days
        keep = ~(stay < min_stay_days).fillna(False)
        flow.add(f"stay of {min_stay_days} days or more (completed shorter stays excluded)", u["treated"], keep=keep)
        u = u[keep]
    keep = u["treated"] | ~u["_enrolled_before"] | (not exclude_served_elsewhere)
    flow.add("comparison: family not served by the program outside this " + ("episode" if design == "in_care" else "enrolment window"), u["treated"], keep=keep)
    u = u[keep].copy()
    # treatment is assigned to families: a child whose sibling in the cohort is treated left
    # care before the family enrolled (an episode open at the enrolment is treated; one that
    # began after it was dropped above). Before it left, it was in care and not yet enrolled,
    # so it is a comparison unit for those delays, matched together with its served siblings'
    # before-enrolment rows (risk-set design). Dropping it would condition on the future: a
    # child who goes home early would count as a comparison only if its family never enrols.
    served_family = u.groupby("family_id")["treated"].transform("max").astype(bool)
    sibling_of_served = ~u["treated"] & served_family
    if risk_set:
        u["_before_enrolment"] = sibling_of_served
    else:
        keep = ~sibling_of_served
        flow.add("comparison: no sibling in the cohort served by the program", u["treated"], keep=keep)
        u = u[keep].copy()
        u["_before_enrolment"] = False

    # index dates and the eligibility rule
    # the earliest possible 18th birthday: a unit known only by an age interval is followed
    # no further than the first day it may have been an adult (conservative: no event of a
    # possible adult is counted)
    u["_birthday18"] = u["_birth_lo"] + pd.DateOffset(years=18)
    if any_interval:
        flow.add(f"units whose birth is known only as an interval (from an age), age at {when} taken at its midpoint",
                 u["treated"], kind="age_interval", keep=u["_age_interval"])
        shortened = u["_age_interval"] & (u["_birthday18"] < ex) & (u["_birthday18"] > u["anchor_date"])
        flow.add("units with an age interval followed only until their earliest possible 18th birthday "
                 "(before the extract date)", u["treated"], kind="age_interval", keep=shortened)
    u["index_delay_days"] = ((u["enrolled_date"] - u["anchor_date"]).dt.days).where(u["treated"], 0).astype("int64")
    u["index_date"] = u["anchor_date"] + pd.to_timedelta(u["index_delay_days"], unit="D")
    # a served unit's comparison row (risk set) is followed only until this enrolment (see
    # _Engine.compute). Only the enrolment that makes the unit treated counts: a family
    # enrolment after the episode (or outside the prevention window) is not the treatment
    # of this design, so it neither censors nor enters the censoring model.
    if censor_at_enrolment:
        u["enrolled_after_days"] = u["index_delay_days"].astype("float64").where(u["treated"])
    if design == "in_care":
        until = u["discharge_date"].fillna(ex)
    else:
        rem_after = oc.first_on_or_after(u[["child_id", "anchor_date"]].rename(columns={"anchor_date": "removal_date"}), episodes_all, "child_id", "removal_date")
        until = rem_after.fillna(ex)
    until = until.where(until < u["_birthday18"], u["_birthday18"]).where(until <= ex, ex)
    u["eligible_until_days"] = (until - u["anchor_date"]).dt.days.astype("int64")
    u["delay_band"] = (u["index_delay_days"] // delay_band_days * delay_band_days).astype("int64")

    # covariates at index
    u["entry_year"] = u["anchor_date"].dt.year.astype("int64")
    u["prior_substantiated_reports"] = _prior_substantiated(u, reports, "anchor_date")
    if "county" not in u or u["county"].isna().all():
        u["county"] = u.get("_child_county")
    else:
        u["county"] = u["county"].fillna(u["_child_county"]) if "_child_county" in u else u["county"]
    sizes = u.groupby(["family_id", "anchor_date"])["child_id"].transform("size")
    u["siblings_in_care"] = (sizes - 1).astype("int64")
    removal_cols = [f"removal_{r}" for r in REMOVAL_REASONS if f"removal_{r}" in u]
    for c in removal_cols:
        u[c] = u[c].fillna(False).astype(bool)
    base_cov = [age_col, "sex", "race_ethnicity", *removal_cols, "prior_removals", "prior_substantiated_reports", "county", "entry_year"]
    if design == "in_care":
        base_cov += ["placement_setting", "siblings_in_care"]
    cov = [c for c in base_cov if c in u] + [c for c in (covariates or []) if c in u and c not in base_cov]
    missing_user = [c for c in (covariates or []) if c not in u]
    if missing_user:
        raise ConfigError(f"covariate(s) {missing_user} are not columns of the children, episodes or reports tables")

    # outcomes
    tpr_cols = [c for c in ("tpr_mother_date", "tpr_father_date") if c in u]
    if tpr_cols:
        t = u[tpr_cols]
        tpr = {"either": t.min(axis=1), "both": t.max(axis=1).where(t.notna().all(axis=1)),
               "mother": u.get("tpr_mother_date"), "father": u.get("tpr_father_date")}[tpr_parent]
        u["_tpr_date"] = pd.to_datetime(tpr)
    else:
        u["_tpr_date"] = pd.NaT
    if design == "in_care":
        u["_discharge_date"], u["_discharge_reason"] = u["discharge_date"], u["discharge_reason"] if "discharge_reason" in u else pd.NA
    else:
        u["_discharge_date"], u["_discharge_reason"] = pd.NaT, pd.NA
    engine = _Engine(design, ex, episodes_all[["child_id", "removal_date", "discharge_date"]], qualifying, oc.reunified_set(reunified_reasons), outcomes,
                     censor_at_enrolment=censor_at_enrolment)
    u = u.reset_index(drop=True)
    u = pd.concat([u, engine.compute(u)], axis=1)
    u["treated"] = u["treated"].astype(bool)

    keep_cols = ["child_id", "family_id", "treated", "anchor_date", "index_date", "index_delay_days", "eligible_until_days", "delay_band"]
    keep_cols += ["enrolled_after_days"] if censor_at_enrolment else []
    keep_cols += [c for c in ("removal_date", "discharge_date", "discharge_reason", "report_date", "enrolled_date", "hours", "contacts", "parent_role") if c in u]
    keep_cols += cov
    # the bounds of the age when it comes from an interval (age subgroups are decided on them)
    keep_cols += [c for c in (f"{age_col}_low", f"{age_col}_high") if c in u]
    keep_cols += [c for c in u.columns if c not in keep_cols and any(c == f"{n}_days" or c == f"{n}_status" for n in outcomes)]
    keep_cols += [oc.window_column(n, m) for n, ms in outcomes.items() for m in ms if oc.window_column(n, m) in u]
    internal = [c for c in _ENGINE_COLS if c.startswith("_")]
    child_data = u[keep_cols + internal].assign(served_later=False)
    before = u["_before_enrolment"].to_numpy(bool)
    if before.any():
        flow.add_counts("siblings of served units who left care before their family enrolled: comparisons before the enrolment",
                        0, int(before.sum()), kind="risk_set")
    # risk-set comparisons: a served unit is "not yet enrolled" before its enrolment day, so it
    # may stand in as a comparison for a unit enrolled earlier (Li, Propert & Rosenbaum 2001).
    # Restricting comparisons to families that never enrol would condition on the future:
    # units that leave care quickly escape the chance to enrol, so never-enrolled units
    # reunify faster than comparable served ones and a program with no effect looks harmful.
    if risk_set:
        later = child_data[child_data["treated"] & (child_data["index_delay_days"] > 0)].copy()
        later["treated"] = False
        later["served_later"] = True
        later["eligible_until_days"] = np.minimum(later["eligible_until_days"], later["index_delay_days"])
        later["index_delay_days"] = 0
        later["delay_band"] = 0
        later["index_date"] = later["anchor_date"]
        later = later.drop(columns=[c for c in ("enrolled_date", "hours", "contacts", "parent_role") if c in later])
        fresh = engine.compute(later)
        for col in fresh.columns:
            later[col] = fresh[col]
        flow.add_counts("served units that may also serve as comparisons before their enrolment", 0, len(later), kind="risk_set")
        child_data = pd.concat([child_data, later], ignore_index=True)
        before = np.r_[before, np.zeros(len(later), bool)]
    # a served family's rows before its enrolment form a block of their own (all comparisons)
    suffix = np.where(child_data["served_later"].to_numpy(bool) | before, "~before-enrolment", "")
    child_data["match_family"] = child_data["family_id"].astype("string") + suffix

    if unit == "family":
        children_rows = child_data.assign(
            _unit=child_data["family_id"].astype("string") + ":" + child_data["anchor_date"].dt.strftime("%Y-%m-%d") + suffix
        )
        data = _family_rows(children_rows, cov, family_outcome, engine)
        flow.add("families (one row per family and removal date)", data["treated"], keep=~data["served_later"])
        # the family's own covariates: the youngest child's age, the number of children (which
        # replaces siblings in care: removed together, the two are the same number less one)
        cov = family_covariates(cov, design)
    else:
        data = child_data.copy()
        own_suffix = np.where(child_data["served_later"].to_numpy(bool), "~before-enrolment", "")
        data.insert(0, "unit_id", data["child_id"].astype("string") + ":" + data["anchor_date"].dt.strftime("%Y-%m-%d") + own_suffix)
        children_rows = child_data
    original = ~data["served_later"].astype(bool)
    for name, months in outcomes.items():
        for m in months:
            col = oc.window_column(name, m)
            if col in data and name != "time_in_care":
                at_risk = data[f"{name}_status"].notna() if f"{name}_status" in data else pd.Series(True, index=data.index)
                flow.add(f"{col}: window not yet observed at the extract date (left out of this rate)", data["treated"], kind="window", keep=original & at_risk & data[col].isna())
    settings["outcomes"] = outcomes
    flow.linkage = _roster_linkage(enr, family_of, children.index, data)
    return Cohort(data.reset_index(drop=True), flow, design, unit, ex, cov, outcomes, settings, engine, children_rows)


def _children_with_birth_bounds(children: pd.DataFrame) -> pd.DataFrame:
    """One row per child (the first), with ``_birth_lo``/``_birth_hi``: the birth-date bounds.

    A birth date gives equal bounds and wins over any interval (an AFCARS DOB over an
    NCANDS age); otherwise the bounds are the intersection of the child's
    ``birth_date_min``/``birth_date_max`` over its rows (several sources may give an age).
    """
    first = children.drop_duplicates("child_id", keep="first").set_index("child_id")
    nat = pd.Series(pd.NaT, index=children.index, dtype="datetime64[ns]")
    g = pd.DataFrame({
        "child_id": children["child_id"],
        "bd": children["birth_date"] if "birth_date" in children else nat,
        "lo": children["birth_date_min"] if "birth_date_min" in children else nat,
        "hi": children["birth_date_max"] if "birth_date_max" in children else nat,
    }).groupby("child_id", sort=False).agg(bd=("bd", "first"), lo=("lo", "max"), hi=("hi", "min")).reindex(first.index)
    exact = g["bd"].notna()
    ok = exact | (g["lo"].notna() & g["hi"].notna() & (g["lo"] <= g["hi"]))
    first["_birth_lo"] = g["bd"].where(exact, g["lo"]).where(ok)
    first["_birth_hi"] = g["bd"].where(exact, g["hi"]).where(ok)
    return first.drop(columns=[c for c in ("birth_date_min", "birth_date_max") if c in first])


def _under_age(at: pd.Series, birth: pd.Series, limit: float) -> pd.Series:
    """Whether a child born on ``birth`` is younger than ``limit`` years on ``at``.

    Whole years use the calendar (18 on the 18th birthday); fractions, age in days / 365.25.
    """
    if float(limit).is_integer():
        return at < birth + pd.DateOffset(years=int(limit))
    return (at - birth).dt.days / 365.25 < limit


def _roster_linkage(enr: pd.DataFrame, family_of: pd.Series, child_ids: pd.Index, data: pd.DataFrame) -> dict[str, int]:
    """Families on the roster, those with a child in the extract, those served in the cohort.

    A roster whose ids do not match the extract's (leading zeros, a second id system) shows
    up here as a low linked share even when validation could not tell which rows are wrong.
    """
    if enr.empty:
        return {}
    roster = pd.Index(enr["family_id"].astype("string").dropna().unique())
    with_child = pd.Index(family_of.reindex(child_ids.astype("string")).dropna().astype("string").unique())
    served = pd.Index(data.loc[data["treated"].astype(bool), "family_id"].astype("string").dropna().unique())
    return {
        "roster_families": len(roster),
        "linked_families": int(roster.isin(with_child).sum()),
        "served_in_cohort": int(roster.isin(served).sum()),
    }


def family_covariate_name(child_level: str) -> str:
    """The family-unit column built from a child-level covariate (``age_at_removal`` ->
    ``youngest_age_at_removal``; other covariates keep their name).

    Examples
    --------
    >>> family_covariate_name("age_at_report"), family_covariate_name("county")
    ('youngest_age_at_report', 'county')
    """
    return f"youngest_{child_level}" if child_level.startswith("age_at_") else child_level


#: Family units: the number of children in the unit, by design.
FAMILY_SIZE = {"in_care": "children_in_care", "prevention": "children_in_report"}


def family_covariates(cov: list[str], design: str) -> list[str]:
    """A family cohort's covariates from the child-level list (see :func:`family_covariate_name`).

    ``siblings_in_care`` gives way to the number of children in the unit.

    Examples
    --------
    >>> family_covariates(["age_at_removal", "sex", "siblings_in_care"], "in_care")
    ['youngest_age_at_removal', 'sex', 'children_in_care']
    """
    out = [family_covariate_name(c) for c in cov if c != "siblings_in_care"]
    return [*out, FAMILY_SIZE[design]]


def _family_rows(child: pd.DataFrame, cov: list[str], rule: str, engine: _Engine) -> pd.DataFrame:
    """One row per family and removal (report) date; siblings removed together form one unit."""
    g = child.groupby("_unit", sort=True)
    fam = pd.DataFrame(index=g.size().index)
    fam["family_id"] = g["family_id"].first()
    fam["match_family"] = g["match_family"].first()
    fam["served_later"] = g["served_later"].max().astype(bool)
    fam["treated"] = g["treated"].max().astype(bool)
    for c in ("anchor_date", "removal_date", "report_date"):
        if c in child:
            fam[c] = g[c].min()
    fam["index_delay_days"] = g["index_delay_days"].max()
    fam["index_date"] = fam["anchor_date"] + pd.to_timedelta(fam["index_delay_days"], unit="D")
    fam["eligible_until_days"] = g["eligible_until_days"].max()
    if "enrolled_after_days" in child:
        fam["enrolled_after_days"] = g["enrolled_after_days"].min()
    fam["delay_band"] = g["delay_band"].max()
    fam["children_in_care"] = g.size()
    if engine.design == "prevention":
        fam["children_in_report"] = fam["children_in_care"]  # children on the index report
    for c in ("enrolled_date", "hours", "contacts", "parent_role"):
        if c in child:
            fam[c] = g[c].first()
    for c in cov:
        s = child[c]
        if c.startswith("age_at_"):
            fam[f"youngest_{c}"] = g[c].min()
        elif s.dtype == bool or str(s.dtype) == "boolean":
            fam[c] = g[c].max()
        elif pd.api.types.is_numeric_dtype(s):
            fam[c] = g[c].max()
        else:
            fam[c] = g[c].first()
    # bounds of the youngest child's age (from age intervals): the minimum of each bound
    for c in [c for c in child.columns if c.startswith("age_at_") and c.endswith(("_low", "_high"))]:
        fam[f"youngest_{c}"] = g[c].min()
    kids = child.copy()
    kids["index_date"] = kids["_unit"].map(fam["index_date"])
    kids = _at_risk(kids, kids["_unit"].map(fam["index_delay_days"]))
    agg = _aggregate_family(pd.concat([kids[["_unit"]].rename(columns={"_unit": "family_id"}), engine.compute(kids)], axis=1), rule)
    fam = fam.join(agg)
    fam = fam.reset_index().rename(columns={"_unit": "unit_id"})
    return fam


def _at_risk(kids: pd.DataFrame, delay: pd.Series) -> pd.DataFrame:
    """The children of family units still at risk at their unit's index (``delay`` days after removal).

    A family unit's outcome counts only the children in care at its index: a sibling who went
    home before it is not part of the family's time at risk (counting it would make the
    family "reunified" on day 0). A treated family's children are those in care at the
    enrolment; a comparison family's are those in care at its pseudo-index.
    """
    d = delay.to_numpy(float)
    return kids[(d <= 0) | (kids["eligible_until_days"].to_numpy(float) > d)]


def build_cohort_from_config(ext: Extract, cfg: dict[str, Any]) -> Cohort:
    """Build the cohort described by a config's ``[cohort]`` and ``[outcomes]`` sections."""
    c = cfg["cohort"]
    outcomes = {name: spec.get("windows_months", oc.DEFAULT_WINDOWS.get(name, [])) for name, spec in cfg.get("outcomes", {}).items()} or None
    return build_cohort(
        ext, design=c["design"], entry_from=c["entry_from"], entry_to=c["entry_to"], unit=c["unit"], episode=c["episode"],
        min_stay_days=c["min_stay_days"], max_age_at_removal=c["max_age_at_removal"], reunified_reasons=c["reunified_reasons"],
        family_outcome=c["family_outcome"], enrollment_window_days=c["enrollment_window_days"], tpr_parent=c["tpr_parent"],
        delay_band_days=c["delay_band_days"], outcomes=outcomes, covariates=c["covariates"] or None,
        censor_at_enrolment=c["censor_at_enrolment"],
    )
