"""Synthetic agency extracts with a known program effect.

The generator simulates an agency's child-welfare history (families, removals, exits,
re-entries, maltreatment reports) and a parent partner program whose uptake is confounded
by removal reason, county and child age. It writes the extract in the layouts an agency
actually has: legacy AFCARS foster-care files (one per semi-annual period), NCANDS child
files (one per fiscal year), the program roster and a child-family crosswalk, plus the same
data in the canonical layout, two ready configs and ``truth.json`` with the true effects.

The model
---------
* Families of 1-4 children in 12 counties; race/ethnicity and removal reasons are mostly
  family-level; about 20% of children are removed as infants.
* Exits from care are competing risks in continuous time, each a Weibull cumulative hazard
  with covariate effects: reunification, relatives, guardianship, runaway (teens), transfer,
  death, emancipation at the 18th birthday, and adoption a few months after a termination
  of parental rights (TPR), which is itself a Weibull event that stops reunification.
* Every unit has **both potential trajectories** from common random numbers: each cause has
  one Exp(1) variate *E*; without the program the event time solves ``H(t) = E``; with the
  program, enrolled at *e*, it solves ``H(e) + HR * (H(t) - H(e)) = E`` for ``t > e``. Both
  worlds therefore agree before enrolment and the true effect on the treated is computed
  exactly from the simulated units (``truth.json``).
* ``design="in_care"``: every removal of a family (first removals, a newborn removed later,
  re-entries) is a referral; the family is offered the program *d* days later (mostly
  5-120) if a child is still in care then, and enrols at the first offer it accepts. Every
  episode follows the same outcome model and any episode can be treated (earlier removals
  are re-entries of the model, not episodes made to end at home), so served and unserved
  units compared at the same point in care differ only through the program and the
  measured confounders. The program raises the reunification hazard and lowers TPR,
  re-entry and maltreatment recurrence of the episode open at enrolment (an episode that
  begins after it is not treated). ``design="prevention"``: a family enrols
  within 60 days after an index maltreatment report if its children were not removed; the
  program lowers the removal and recurrence hazards.

Everything is vectorised (no loop over children): a million children take about 20 seconds.

Examples
--------
>>> syn = generate(n_children=500, seed=1)
>>> sorted(syn.tables())
['children', 'episodes', 'families', 'participation', 'reports']
>>> syn.truth["effects"]["reunification_hr"]
1.35
"""

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from . import schema

__all__ = [
    "COUNTIES",
    "DEFAULT_EFFECTS",
    "EXTRACT_DATE",
    "SyntheticExtract",
    "afcars_file_name",
    "afcars_style",
    "generate",
    "write_synthetic",
]

#: Extract date of the default synthetic extract.
EXTRACT_DATE = "2023-12-31"
#: Default entry window of the analysis cohort written into ``eval.toml``.
ENTRY_FROM, ENTRY_TO = "2016-01-01", "2021-12-31"
#: Removals (and index reports) are spread from this date to the extract date.
FIRST_DATE = "2010-01-01"
#: NCANDS files start with federal fiscal year 2010 (reports before it are not kept).
NCANDS_START = "2009-10-01"
STATE_FIPS, STATE_ABBR = 19, "IA"

#: Program effects and uptake. Hazard ratios act only after enrolment.
DEFAULT_EFFECTS: dict[str, float] = {
    "reunification_hr": 1.35,  # in care: hazard of reunification after enrolment
    "tpr_hr": 0.70,  # in care: hazard of TPR after enrolment
    "reentry_hr": 0.70,  # in care: hazard of re-entry after a discharge home
    "recurrence_hr": 0.80,  # both: hazard of a substantiated re-report
    "removal_hr": 0.60,  # prevention: hazard of removal after enrolment
    "dose_slope": 0.10,  # in care: log reunification HR per SD of log(hours)
    "uptake": 0.22,  # P(enrol | offered) averaged over the families offered the program
}


@dataclass(frozen=True)
class County:
    """A county: FIPS code, share of families, program start, and its confounding effects."""

    fips: str
    name: str
    weight: float
    program_start: str
    uptake: float  # log-odds shift of enrolment
    reunification: float  # log-hazard shift of reunification (and removal, prevention)


#: Twelve Iowa counties; the program starts in 2014 in the large ones and later elsewhere.
#: Counties differ in both uptake and outcomes, so county is a confounder.
COUNTIES: tuple[County, ...] = (
    County("19153", "Polk", 0.22, "2014-01-01", 0.35, -0.10),
    County("19113", "Linn", 0.11, "2014-01-01", 0.25, 0.10),
    County("19163", "Scott", 0.09, "2014-07-01", 0.10, -0.15),
    County("19013", "Black Hawk", 0.08, "2014-07-01", 0.20, -0.05),
    County("19193", "Woodbury", 0.07, "2015-01-01", -0.20, -0.20),
    County("19103", "Johnson", 0.07, "2016-01-01", 0.00, 0.20),
    County("19061", "Dubuque", 0.05, "2016-01-01", -0.10, 0.15),
    County("19155", "Pottawattamie", 0.06, "2017-01-01", -0.30, -0.10),
    County("19169", "Story", 0.05, "2017-07-01", -0.25, 0.20),
    County("19057", "Des Moines", 0.05, "2018-01-01", -0.35, 0.00),
    County("19179", "Wapello", 0.04, "2018-07-01", -0.40, -0.05),
    County("19139", "Muscatine", 0.05, "2019-01-01", -0.20, 0.05),
)

# Weibull cumulative hazards H(t) = a * exp(lp) * (t / 1 year) ** rho at the reference
# covariates (no drug removal, child aged 1-12, first removal, average county).
_HAZ: dict[str, tuple[float, float]] = {
    "reunification": (0.56, 1.25),
    "relative": (0.09, 1.0),
    "guardianship": (0.05, 1.4),
    "runaway": (0.12, 1.0),  # teens only
    "transfer": (0.012, 1.0),
    "death": (0.002, 1.0),
    "tpr": (0.11, 2.3),  # rare in the first year, common in the second
    "reentry": (0.075, 0.6),  # from a discharge home; decreasing hazard
    "recurrence": (0.10, 0.7),  # substantiated re-report after a discharge home
    "removal": (0.11, 0.8),  # prevention: removal after an index report
    "prevention_recurrence": (0.08, 0.8),
}
_YEAR = 365.25
_SHORT_STAY_P = 0.03  # episodes that end within a week (returned home at once)
_FAMILY_SHARE = 0.85  # siblings share their random numbers (they mostly move together)

# Discharge reasons as indexes into schema.DISCHARGE_REASONS (AFCARS DISREASN = index + 1).
_R = {name: i for i, name in enumerate(schema.DISCHARGE_REASONS)}
_HOME = (_R["reunification"], _R["relative"], _R["guardianship"])
_PERMANENCY = tuple(sorted(_R[r] for r in schema.PERMANENCY_REASONS))

_REASONS = tuple(schema.REMOVAL_REASONS)  # canonical removal reasons, AFCARS E26-E40 order
_RI = {name: i for i, name in enumerate(_REASONS)}
#: Family-level (parent) removal reasons and their prevalence (drug use raises some of them).
_PARENT_REASONS = {
    "physical_abuse": 0.15,
    "sexual_abuse": 0.04,
    "parent_alcohol": 0.06,
    "parent_drugs": 0.38,
    "parent_death": 0.01,
    "parent_incarceration": 0.05,
    "caretaker_unable_to_cope": 0.12,
    "abandonment": 0.04,
    "relinquishment": 0.005,
    "inadequate_housing": 0.10,
}
_RACE_FLAGS = ("AmIAKN", "Asian", "BlkAfrAm", "HawaiiPI", "White", "UnToDetm")
_NCANDS_RACE = ("ChRacAI", "ChRacAs", "ChRacBl", "ChRacNH", "ChRacWh", "ChRacUD")
_MAL_TYPES = {1: "physical_abuse", 2: "neglect", 3: "medical_neglect", 4: "sexual_abuse",
              5: "psychological_maltreatment", 8: "other", 9: "unknown"}

_AFCARS_COLUMNS = (
    "State", "RepDatYr", "RepDatMo", "FIPSCode", "RecNumbr", "DOB", "Sex", *_RACE_FLAGS,
    "HisOrgin", "Rem1Dt", "TotalRem", "DLstFCDt", "LatRemDt", "NumPlep",
    *schema.REMOVAL_REASONS.values(), "CurPlSet", "CaseGoal", "TPRMomDt", "TPRDadDt",
    "DoDFCDt", "DISREASN",
)
# Columns whose 1 = yes / 2 = no coding some (older) files write as 1 / 0.
_AFCARS_FLAGS = (*_RACE_FLAGS, *schema.REMOVAL_REASONS.values())
_NCANDS_COLUMNS = (
    "SubYr", "StaTerr", "RptID", "ChID", "RptDt", "RptCnty", "AFCARSID", "ChAge", "ChSex",
    "ChBDate", *_NCANDS_RACE, "CEthn", "ChMal1", "Mal1Lev", "ChMal2", "Mal2Lev", "ChMal3",
    "Mal3Lev", "ChMal4", "Mal4Lev",
)

_EPOCH = np.datetime64("1970-01-01", "D")


# --------------------------------------------------------------------------- dates as day numbers
def _day(value: str | pd.Timestamp) -> int:
    """Days since 1970-01-01 of a date."""
    return int((np.datetime64(pd.Timestamp(value).date(), "D") - _EPOCH).astype("int64"))


_TABLE_FROM = -25567  # 1900-01-01: day numbers are looked up in tables covering 1900-2099


def _calendar() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day of every day 1900-2099 (built once; converting datetime64 is slow)."""
    if not _CALENDAR:
        d = np.arange(_TABLE_FROM, _TABLE_FROM + 73_049, dtype="int64").astype("datetime64[D]")
        months = d.astype("datetime64[M]")
        m = months.astype("int64")
        dom = (d - months.astype("datetime64[D]")).astype("int64") + 1
        _CALENDAR.extend([(1970 + m // 12).astype("int16"), (m % 12 + 1).astype("int8"), dom.astype("int8")])
    return _CALENDAR[0], _CALENDAR[1], _CALENDAR[2]


_CALENDAR: list[np.ndarray] = []


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month (1-12) and day of month of integer day numbers (1900-2099)."""
    i = np.asarray(days, dtype="int64") - _TABLE_FROM
    y, m, d = _calendar()
    return y[i].astype("int64"), m[i].astype("int64"), d[i].astype("int64")


def _period_of(days: np.ndarray) -> np.ndarray:
    """AFCARS reporting period of each day: ``2 * FY + (0 for A, 1 for B)``.

    Federal fiscal year FY runs from Oct 1 of FY-1; period A is Oct 1 - Mar 31, B Apr 1 - Sep 30.
    """
    y, m, _ = _ymd(days)
    fy = y + (m >= 10)
    return 2 * fy + ((m >= 4) & (m <= 9))


def _period_start(period: np.ndarray) -> np.ndarray:
    period = np.asarray(period, dtype="int64")
    fy, half = period // 2, period % 2
    month = np.where(half == 0, (fy - 1 - 1970) * 12 + 9, (fy - 1970) * 12 + 3)
    return month.astype("datetime64[M]").astype("datetime64[D]").astype("int64")


def _period_end(period: np.ndarray) -> np.ndarray:
    return _period_start(np.asarray(period, dtype="int64") + 1) - 1


def afcars_file_name(period: int) -> str:
    """File stem of an AFCARS period index, e.g. ``FC2016A``.

    Examples
    --------
    >>> afcars_file_name(2 * 2016 + 1)
    'FC2016B'
    """
    return f"FC{period // 2}{'AB'[period % 2]}"


def afcars_style(fiscal_year: int) -> dict[str, bool]:
    """How the AFCARS files of a fiscal year are written (to exercise the preset).

    Files up to FY2011 have UPPERCASE column names; FY2012-FY2014 code the yes/no flags
    (race and removal reasons) as 1/0 instead of 1/2 and write ``DISREASN`` 0 for children
    not discharged; later files use the NDACAN names, 1/2 flags and a blank ``DISREASN``.

    Examples
    --------
    >>> afcars_style(2011), afcars_style(2013)["zero_one"]
    ({'upper': True, 'zero_one': False}, True)
    """
    return {"upper": fiscal_year <= 2011, "zero_one": 2012 <= fiscal_year <= 2014}


def _birthday(birth: np.ndarray, years: int) -> np.ndarray:
    """Day of the ``years``-th birthday (Feb 29 -> Feb 28, as ``pandas.DateOffset`` does)."""
    y, m, d = _ymd(birth)
    month = (y + years - 1970) * 12 + (m - 1)
    start = month.astype("datetime64[M]").astype("datetime64[D]").astype("int64")
    length = (month + 1).astype("datetime64[M]").astype("datetime64[D]").astype("int64") - start
    return start + np.minimum(d, length) - 1


def _age_years(birth: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Completed years of age on day ``at`` (the calendar rule: 18 on the 18th birthday)."""
    y1, m1, d1 = _ymd(birth)
    y2, m2, d2 = _ymd(at)
    months = (y2 - y1) * 12 + (m2 - m1) - (d2 < d1)
    # Feb 29 births turn a year older on Feb 28 of non-leap years (DateOffset convention)
    return months // 12


def _to_datetime(days: np.ndarray) -> np.ndarray:
    """Float day numbers (NaN = missing) to ``datetime64[ns]`` (NaT = missing)."""
    d = np.asarray(days, dtype="float64")
    out = np.full(d.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = ~np.isnan(d)
    out[ok] = d[ok].astype("int64").astype("datetime64[D]").astype("datetime64[ns]")
    return out


# --------------------------------------------------------------------------- small helpers
def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _choice(rng: np.random.Generator, p: Mapping[int, float] | list[float], size: int) -> np.ndarray:
    """Draw codes with the given probabilities (a vectorised categorical draw)."""
    codes = np.array(list(p.keys()) if isinstance(p, Mapping) else range(len(p)))
    probs = np.array(list(p.values()) if isinstance(p, Mapping) else p, dtype="float64")
    cum = np.cumsum(probs / probs.sum())
    return codes[np.minimum(np.searchsorted(cum, rng.random(size), side="right"), len(codes) - 1)]


def _shared(rng: np.random.Generator, fam: np.ndarray, n_fam: int, draw: str = "exp", share: float = _FAMILY_SHARE) -> np.ndarray:
    """A random number per unit, shared by the siblings of a family with probability ``share``.

    Sharing the Exp(1) variates is what makes siblings leave (and re-enter) care together.
    """
    gen = rng.standard_exponential if draw == "exp" else rng.random
    fam_draw, own = gen(n_fam), gen(len(fam))
    return np.where(rng.random(len(fam)) < share, fam_draw[fam], own)


def _weibull_time(e: np.ndarray, haz: str, lp: np.ndarray | float) -> np.ndarray:
    """Days at which ``a * exp(lp) * (t / year) ** rho`` reaches ``e`` (untreated world)."""
    a, rho = _HAZ[haz]
    with np.errstate(divide="ignore", over="ignore"):
        return _YEAR * (e / (a * np.exp(lp))) ** (1.0 / rho)


def _weibull_time_treated(e: np.ndarray, haz: str, lp: np.ndarray | float, start: np.ndarray, hr: np.ndarray | float) -> np.ndarray:
    """Event days when the hazard is multiplied by ``hr`` from day ``start`` on (``inf`` = never).

    Solves ``H(s) + hr * (H(t) - H(s)) = e`` for ``t > s`` with the same ``e`` as the untreated
    world, so the two worlds agree whenever the event happens before ``s``.
    """
    a, rho = _HAZ[haz]
    scale = a * np.exp(lp)
    e = np.asarray(e, dtype="float64")
    start = np.broadcast_to(np.asarray(start, dtype="float64"), e.shape)
    hr = np.broadcast_to(np.asarray(hr, dtype="float64"), e.shape)
    scale = np.broadcast_to(np.asarray(scale, dtype="float64"), e.shape)
    t0 = _weibull_time(e, haz, np.log(scale / a))
    act = np.isfinite(start)
    h_s = np.zeros(e.shape)
    h_s[act] = scale[act] * (np.maximum(start[act], 0.0) / _YEAR) ** rho
    after = act & (e > h_s)
    out = t0.copy()
    target = h_s[after] + (e[after] - h_s[after]) / hr[after]
    with np.errstate(divide="ignore", over="ignore"):
        out[after] = _YEAR * (target / scale[after]) ** (1.0 / rho)
    return out


def _ceil_days(t: np.ndarray) -> np.ndarray:
    """Whole days after the start on which an event at continuous time ``t`` is recorded (>= 1).

    Rounding up keeps the ordering used for enrolment: a child is still in care at the
    enrolment day ``d`` (an integer) exactly when its continuous exit time exceeds ``d``.
    """
    with np.errstate(invalid="ignore"):
        return np.maximum(1.0, np.ceil(t))


def _group_first(keys: np.ndarray) -> np.ndarray:
    """Boolean mask of the first row of each run of equal ``keys`` (rows sorted by key)."""
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return first


# --------------------------------------------------------------------------- population
@dataclass
class _Population:
    """Families and children as parallel arrays (children of a family are contiguous)."""

    n: int
    n_fam: int
    fam: np.ndarray  # child -> family index
    fam_start: np.ndarray  # family -> first child index
    fam_size: np.ndarray
    rank: np.ndarray  # child's rank in its family, 0 = youngest
    ref: np.ndarray  # family reference day (main removal or index report)
    age: np.ndarray  # child's age in years at ref
    birth: np.ndarray  # day of birth (float)
    sex: np.ndarray  # 1 male, 2 female
    race_flags: np.ndarray  # (n, 6) AFCARS race flags, 1 yes 2 no
    hisp: np.ndarray  # HisOrgin 1 yes 2 no 3 unable to determine
    county: np.ndarray  # family county index
    parent: np.ndarray  # (n_fam, 15) family-level removal reasons
    frailty: np.ndarray  # family log-frailty (unmeasured, independent of enrolment)


def _population(rng: np.random.Generator, n_children: int, p_infant: float, ref_from: int, ref_to: int) -> _Population:
    # families of 1-4 children, drawn until they hold n_children (at most n_children families)
    sizes = _choice(rng, {1: 0.45, 2: 0.28, 3: 0.17, 4: 0.10}, n_children + 8)
    cum = np.cumsum(sizes)
    n_fam = int(np.searchsorted(cum, n_children) + 1)
    sizes = sizes[:n_fam].copy()
    sizes[-1] -= int(cum[n_fam - 1] - n_children)  # the last family is cut to hit n exactly
    fam_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype("int64")
    fam = np.repeat(np.arange(n_fam), sizes)
    rank = np.arange(n_children) - fam_start[fam]

    ref = rng.integers(ref_from, ref_to + 1, n_fam).astype("float64")
    # youngest child: infants a large share; older ages spread to 17 with more young children
    infant = rng.random(n_fam) < p_infant
    at_birth = rng.random(n_fam) < 0.35  # many infants are removed within days of birth
    young_age = np.where(
        infant,
        np.where(at_birth, rng.random(n_fam) * 0.03, rng.random(n_fam)),
        1.0 + 16.95 * rng.beta(0.9, 1.5, n_fam),
    )
    # older siblings: 0.8 + Gamma(2, 0.9) years (mean 2.6) between consecutive children
    gaps = np.where(rank == 0, 0.0, 0.8 + rng.gamma(2.0, 0.9, n_children))
    cum = np.cumsum(gaps)
    age = young_age[fam] + cum - cum[fam_start][fam]
    too_old = age >= 17.99
    age[too_old] = 13.0 + 4.98 * rng.random(int(too_old.sum()))
    birth = ref[fam] - np.floor(age * _YEAR)
    sex = np.where(rng.random(n_children) < 0.51, 1, 2).astype("int8")

    # race/ethnicity: a family category, children mostly share it (a few are multiracial)
    cat = _choice(rng, {0: 0.60, 1: 0.16, 2: 0.02, 3: 0.015, 4: 0.005, 5: 0.13, 7: 0.07}, n_fam)
    child_cat = np.where(rng.random(n_children) < 0.06, 6, cat[fam])
    child_cat = np.where(rng.random(n_children) < 0.01, 8, child_cat)  # race unable to determine
    flags = np.full((n_children, 6), 2, dtype="int8")
    # single races: white 0, black 1, american indian 2, asian 3, pacific islander 4
    col = {0: 4, 1: 2, 2: 0, 3: 1, 4: 3}
    for c, j in col.items():
        flags[child_cat == c, j] = 1
    # Hispanic children: mostly White, some Black, some with no race reported
    hisp_child = (child_cat == 5)
    hr_draw = rng.random(n_children)
    flags[hisp_child & (hr_draw < 0.65), 4] = 1
    flags[hisp_child & (hr_draw >= 0.65) & (hr_draw < 0.72), 2] = 1
    flags[hisp_child & (hr_draw >= 0.72), 5] = 1
    # two or more races (family category 7, or a multiracial child)
    multi = (child_cat == 6) | (child_cat == 7)
    second = _choice(rng, {2: 0.6, 0: 0.25, 1: 0.15}, n_children)
    flags[multi, 4] = 1
    for j in (0, 1, 2):
        flags[multi & (second == j), j] = 1
    unknown = child_cat == 8
    flags[unknown, :] = 2
    flags[unknown, 5] = 1
    hisp = np.where(hisp_child, 1, 2).astype("int8")
    hisp[unknown | (rng.random(n_children) < 0.01)] = 3  # Hispanic origin unable to determine
    hisp[hisp_child] = 1

    w = np.array([c.weight for c in COUNTIES])
    county = _choice(rng, list(w / w.sum()), n_fam).astype("int16")

    parent = np.zeros((n_fam, len(_REASONS)), dtype=bool)
    for reason, p in _PARENT_REASONS.items():
        parent[:, _RI[reason]] = rng.random(n_fam) < p
    drugs = parent[:, _RI["parent_drugs"]]
    parent[:, _RI["neglect"]] = rng.random(n_fam) < 0.40 + 0.28 * drugs
    parent[:, _RI["parent_alcohol"]] |= drugs & (rng.random(n_fam) < 0.06)
    parent[:, _RI["parent_incarceration"]] |= drugs & (rng.random(n_fam) < 0.06)
    frailty = rng.normal(0.0, 0.35, n_fam)
    return _Population(n_children, n_fam, fam, fam_start, sizes, rank, ref, age, birth, sex,
                       flags, hisp, county, parent, frailty)


def _race_ethnicity(flags: np.ndarray, hisp: np.ndarray) -> np.ndarray:
    """Canonical race/ethnicity from the AFCARS flags, the way NDACAN derives RaceEthn.

    Hispanic (HisOrgin = 1) of any race first; then exactly one race flag -> that race; two or
    more -> multiracial; none (or only UnToDetm) -> unknown.
    """
    races = ("american_indian_alaska_native", "asian", "black", "native_hawaiian_pacific_islander", "white")
    yes = flags[:, :5] == 1
    n_yes = yes.sum(axis=1)
    single = np.array(races, dtype=object)[np.argmax(yes, axis=1)]
    out = np.where(n_yes == 1, single, np.where(n_yes >= 2, "multiracial", "unknown")).astype(object)
    out[hisp == 1] = "hispanic"
    return out


# --------------------------------------------------------------------------- episode engine
def _episode_covariates(pop: _Population, child: np.ndarray, rem: np.ndarray, prior: np.ndarray) -> dict[str, np.ndarray]:
    """Covariates of each episode and the linear predictors of reunification and TPR."""
    f = pop.fam[child]
    age = (rem - pop.birth[child]) / _YEAR
    year = _ymd(rem.astype("int64"))[0]
    par = pop.parent[f]
    drugs = par[:, _RI["parent_drugs"]].astype(float)
    cr = np.array([c.reunification for c in COUNTIES])[pop.county[f]]
    infant, teen = (age < 1).astype(float), (age >= 13).astype(float)
    lp_r = (-0.45 * drugs - 0.20 * par[:, _RI["parent_alcohol"]] - 0.25 * par[:, _RI["parent_incarceration"]]
            + 0.15 * par[:, _RI["inadequate_housing"]] - 0.25 * infant - 0.30 * teen - 0.35 * prior
            + cr + 0.03 * (year - 2016) + pop.frailty[f])
    lp_t = (0.50 * drugs + 0.20 * par[:, _RI["parent_alcohol"]] + 0.30 * par[:, _RI["parent_incarceration"]]
            + 0.60 * infant + 0.25 * ((age >= 1) & (age < 6)) - 1.30 * teen + 0.40 * prior - 0.5 * pop.frailty[f])
    return {"age": age, "drugs": drugs, "infant": infant, "teen": teen, "prior": prior, "lp_r": lp_r, "lp_t": lp_t,
            "b18": _birthday(pop.birth[child].astype("int64"), 18).astype(float)}


def _draw_exit_latents(rng: np.random.Generator, pop: _Population, child: np.ndarray) -> dict[str, np.ndarray]:
    """One Exp(1) variate per cause (the common random numbers of both worlds)."""
    f, nf = pop.fam[child], pop.n_fam
    lat = {k: _shared(rng, f, nf) for k in ("reunification", "relative", "guardianship", "runaway", "transfer", "death", "tpr")}
    lat["short"] = np.where(rng.random(len(child)) < _SHORT_STAY_P, rng.uniform(0.05, 6.9, len(child)), np.inf)
    gap_u = _shared(rng, f, nf, draw="unif")
    lat["adopt_gap"] = 90.0 - 260.0 * np.log1p(-gap_u * 0.999)  # days from TPR to adoption
    lat["late18"] = 30.0 + 300.0 * rng.random(len(child))  # removed at 18+: extended care ends
    return lat


def _resolve_exits(cov: dict[str, np.ndarray], lat: dict[str, np.ndarray], rem: np.ndarray,
                   enrol: np.ndarray, hr_r: np.ndarray | float, hr_t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuous exit time, discharge reason and TPR time of each episode in one world.

    ``enrol`` is the enrolment day since removal (``inf`` = not enrolled, the untreated world).
    Reunification stops at TPR; adoption follows TPR after a gap; emancipation happens on the
    18th birthday; the earliest cause wins.
    """
    age, teen, infant = cov["age"], cov["teen"], cov["infant"]
    t_r = _weibull_time_treated(lat["reunification"], "reunification", cov["lp_r"], enrol, hr_r)
    t_tpr = _weibull_time_treated(lat["tpr"], "tpr", cov["lp_t"], enrol, hr_t)
    t_l = _weibull_time(lat["relative"], "relative", 0.1 * cov["drugs"])
    t_g = _weibull_time(lat["guardianship"], "guardianship", 0.4 * (age >= 6))
    t_w = np.where(teen > 0, _weibull_time(lat["runaway"], "runaway", 0.0), np.inf)
    t_x = _weibull_time(lat["transfer"], "transfer", 0.0)
    t_d = _weibull_time(lat["death"], "death", 1.0 * infant)
    to18 = cov["b18"] - rem
    t_e = np.where(to18 > 0, to18, lat["late18"])
    gap = lat["adopt_gap"] * np.where(age >= 13, 3.0, np.where(age >= 6, 1.6, 1.0))
    cols = np.arange(len(rem))
    pre = np.stack([t_r, t_l, t_g, t_w, t_x, t_d, t_e, lat["short"]])
    pre_reason = np.array([_R["reunification"], _R["relative"], _R["guardianship"], _R["runaway"], _R["transfer"],
                           _R["death"], _R["emancipation"], _R["reunification"]])
    k = np.argmin(pre, axis=0)
    t_pre = pre[k, cols]
    tpr_first = t_tpr < t_pre
    post = np.stack([t_tpr + gap, t_l, t_g, t_w, t_x, t_d, t_e])
    post_reason = np.array([_R["adoption"], _R["relative"], _R["guardianship"], _R["runaway"], _R["transfer"],
                            _R["death"], _R["emancipation"]])
    k2 = np.argmin(post, axis=0)
    exit_t = np.where(tpr_first, post[k2, cols], t_pre)
    reason = np.where(tpr_first, post_reason[k2], pre_reason[k]).astype("int8")
    return exit_t, reason, np.where(tpr_first, t_tpr, np.inf)


def _discretise(rem: np.ndarray, exit_t: np.ndarray, reason: np.ndarray, tpr_t: np.ndarray, extract: int) -> dict[str, np.ndarray]:
    """Day numbers of discharge and TPR (NaN when after the extract date: censored)."""
    dis = rem + _ceil_days(exit_t)
    tpr = np.where(np.isfinite(tpr_t), rem + _ceil_days(tpr_t), np.nan)
    dis_obs = np.where(dis <= extract, dis, np.nan)
    return {
        "dis_raw": dis,
        "dis": dis_obs,
        "reason": np.where(np.isnan(dis_obs), -1, reason).astype("int8"),
        "tpr": np.where(tpr <= extract, tpr, np.nan),
        "tpr_raw": tpr,
    }


def _reentry(u: np.ndarray, e_re: np.ndarray, lp: np.ndarray, hr: np.ndarray | float, dis: np.ndarray,
             reason: np.ndarray, b18: np.ndarray, extract: int) -> np.ndarray:
    """Day of re-entry after a discharge home (NaN = none by the extract date or the 18th birthday).

    Semi-annual AFCARS files hide an exit and re-entry inside one reporting period (the
    period's record shows only the later episode; domain.md section 2), so a re-entry that
    would fall in the discharge's own period is moved into the first 60 days of the next
    period: every episode is then visible in at least one file and the preset can rebuild
    all of them exactly.
    """
    home = np.isin(reason, _HOME) & ~np.isnan(dis)
    lp = lp + np.where(reason == _R["reunification"], 0.0, np.log(0.4))
    t = _weibull_time(e_re / np.asarray(hr, dtype=float), "reentry", lp)
    dis_i = np.where(home, dis, 0.0)
    nxt = _period_start(_period_of(dis_i.astype("int64")) + 1).astype(float)
    raw = dis_i + _ceil_days(t)
    day = np.where(raw < nxt, nxt + np.floor(u * 60.0), raw)
    ok = home & np.isfinite(t) & (day <= extract) & (day < b18)
    return np.where(ok, day, np.nan)


def _recurrence_day(e_rec: np.ndarray, lp: np.ndarray, hr: np.ndarray | float, dis: np.ndarray, reason: np.ndarray,
                    b18: np.ndarray, extract: int, reentry_report: np.ndarray) -> np.ndarray:
    """First substantiated re-report after a discharge home, dated 15+ days after discharge.

    It is kept only if it comes before the report of a re-entry (which is otherwise the first
    recurrence), before the 18th birthday and by the extract date.
    """
    home = np.isin(reason, _HOME) & ~np.isnan(dis)
    t = _weibull_time(e_rec / np.asarray(hr, dtype=float), "recurrence", lp)
    day = np.where(home, dis, 0.0) + 14.0 + _ceil_days(t)
    ok = home & np.isfinite(t) & (day <= extract) & (day < b18)
    ok &= np.isnan(reentry_report) | (day < reentry_report)
    return np.where(ok, day, np.nan)


# --------------------------------------------------------------------------- batches of episodes
@dataclass
class _Batch:
    """Episodes that start together in the simulation (first removals, or re-entries).

    Holds every random number of its episodes (exits, re-entry, recurrence), so any world
    (untreated, or treated from some day on) can be resolved from the same numbers.
    """

    child: np.ndarray
    rem: np.ndarray
    kind: int  # 1 main (first removal), 2 re-entry
    cov: dict[str, np.ndarray]
    lat: dict[str, np.ndarray]
    post: dict[str, np.ndarray]  # re-entry and recurrence variates, report lag of a re-entry
    w0: dict[str, np.ndarray]  # the untreated world
    prev_dis: np.ndarray
    report_lag: np.ndarray


def _start_batch(rng: np.random.Generator, pop: _Population, child: np.ndarray, rem: np.ndarray, prior: np.ndarray,
                 kind: int, extract: int, prev_dis: np.ndarray | None = None,
                 report_lag: np.ndarray | None = None) -> _Batch:
    """Draw the random numbers of a batch and resolve its untreated world."""
    rem = rem.astype(float)
    cov = _episode_covariates(pop, child, rem, prior.astype(float))
    lat = _draw_exit_latents(rng, pop, child)
    fm, nf = pop.fam[child], pop.n_fam
    e_re, u_re = _shared(rng, fm, nf), _shared(rng, fm, nf, draw="unif")
    lag = np.floor(_shared(rng, fm, nf, draw="unif") * 11.0)
    e_rec = _shared(rng, fm, nf)
    post = {"e_re": e_re, "u_re": u_re, "lag": lag, "e_rec": e_rec}
    nan = np.full(len(child), np.nan)
    b = _Batch(child, rem, kind, cov, lat, post, {}, nan if prev_dis is None else prev_dis,
               nan if report_lag is None else report_lag)
    t0, r0, tpr0 = _resolve_exits(cov, lat, rem, np.full(len(child), np.inf), 1.0, 1.0)
    b.w0 = _after_discharge(pop, b, _discretise(rem, t0, r0, tpr0, extract), 1.0, 1.0, extract)
    return b


def _after_discharge(pop: _Population, b: _Batch, w: dict[str, np.ndarray], hr_re: np.ndarray | float,
                     hr_rec: np.ndarray | float, extract: int) -> dict[str, np.ndarray]:
    """Add the re-entry, its report and the maltreatment recurrence after a world's discharge."""
    with np.errstate(invalid="ignore"):
        infant_at_dis = ((w["dis"] - pop.birth[b.child]) / _YEAR < 1.0).astype(float)
    lp_re = 0.35 * b.cov["drugs"] + 0.30 * b.cov["prior"]
    re = _reentry(b.post["u_re"], b.post["e_re"], lp_re + 0.2 * infant_at_dis, hr_re, w["dis"], w["reason"],
                  b.cov["b18"], extract)
    rep = np.where(np.isnan(re), np.nan, np.maximum(re - b.post["lag"], w["dis"] + 1.0))
    rec = _recurrence_day(b.post["e_rec"], 0.3 * b.cov["drugs"], hr_rec, w["dis"], w["reason"], b.cov["b18"], extract, rep)
    return {**w, "reentry": re, "reentry_report": rep, "recurrence": rec}


def _treated_world(pop: _Population, b: _Batch, treated: np.ndarray, enrol_day: np.ndarray, hr_r: np.ndarray | float,
                   fx: Mapping[str, float], extract: int) -> dict[str, np.ndarray]:
    """The world in which ``treated`` episodes have the program from ``enrol_day`` on (others as untreated)."""
    if not treated.any():
        return b.w0
    d = np.where(treated, enrol_day - b.rem, np.inf)
    t1, r1, tpr1 = _resolve_exits(b.cov, b.lat, b.rem, d, np.where(treated, hr_r, 1.0), fx["tpr_hr"])
    w1 = _discretise(b.rem, t1, r1, tpr1, extract)
    return _after_discharge(pop, b, w1, np.where(treated, fx["reentry_hr"], 1.0),
                            np.where(treated, fx["recurrence_hr"], 1.0), extract)


def _observe(b: _Batch, w1: dict[str, np.ndarray], treated: np.ndarray, enrol_day: np.ndarray,
             keep: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Observed episodes (treated ones from ``w1``), both potential worlds, and the recurrence reports.

    ``keep`` selects the rows that are part of the observed history.
    """
    keep = np.ones(len(b.child), bool) if keep is None else keep
    obs = {k: np.where(treated, w1[k], b.w0[k])[keep] for k in b.w0}
    observed = {
        "child": b.child[keep], "rem": b.rem[keep], "dis": obs["dis"], "reason": obs["reason"].astype("int8"),
        "tpr": obs["tpr"], "kind": np.full(int(keep.sum()), b.kind, dtype="int8"), "prev_dis": b.prev_dis[keep],
        "treated": treated[keep], "enrol": np.where(treated, enrol_day, np.nan)[keep], "report_lag": b.report_lag[keep],
        "reentry": obs["reentry"], "reentry_report_lag": b.post["lag"][keep],
    }
    potential = {"child": b.child, "rem": b.rem, "enrol": np.where(treated, enrol_day, np.nan), "treated": treated,
                 "b18": b.cov["b18"]}
    for wi, w in ((0, b.w0), (1, w1)):
        for key in ("dis", "reason", "tpr", "reentry", "reentry_report", "recurrence"):
            potential[f"{key}_{wi}"] = w[key]
    rec = obs["recurrence"]
    has = ~np.isnan(rec)
    return observed, potential, {"child": observed["child"][has], "day": rec[has], "kind": 3, "subst": True}


def _finish_batch(rng: np.random.Generator, pop: _Population, b: _Batch, treated: np.ndarray, enrol_day: np.ndarray,
                  hr_r: np.ndarray, fx: Mapping[str, float], extract: int, prev_dis: np.ndarray,
                  report_lag: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Treated world, re-entry and recurrence of a batch; returns (observed, potential, recurrence reports).

    ``treated`` episodes have the program from ``enrol_day`` on (a day number); the others
    are the same in both worlds. Every random number was drawn by :func:`_start_batch`,
    whether or not any episode is treated, so the draws (and the data) do not depend on who
    enrolled.
    """
    b.prev_dis, b.report_lag = prev_dis, report_lag
    return _observe(b, _treated_world(pop, b, treated, enrol_day, hr_r, fx, extract), treated, enrol_day)


def _chain(rng: np.random.Generator, pop: _Population, first: dict[str, np.ndarray], extract: int,
           fx: Mapping[str, float], enrol_f: np.ndarray, hr_f: np.ndarray,
           report_parts: list[dict[str, Any]], potentials: list[dict[str, np.ndarray]],
           max_reentries: int = 3) -> list[dict[str, np.ndarray]]:
    """Re-entries after discharges home, up to ``max_reentries`` deep.

    A re-entry episode that is open on the day its family enrols is treated like a main
    episode: the cohort counts any episode that covers the enrolment as treated, so the
    program acts on it too.
    """
    batches: list[dict[str, np.ndarray]] = []
    cur = first
    for _ in range(max_reentries):
        go = ~np.isnan(cur["reentry"])
        if not go.any():
            break
        child = cur["child"][go]
        b = _start_batch(rng, pop, child, cur["reentry"][go], np.ones(len(child), bool), 2, extract)
        e = enrol_f[pop.fam[child]]
        with np.errstate(invalid="ignore"):
            treated = ~np.isnan(e) & (b.rem <= e) & (b.w0["dis_raw"] > e)
        obs, pot, rec = _finish_batch(rng, pop, b, treated, e, hr_f[pop.fam[child]], fx, extract, cur["dis"][go],
                                      cur["reentry_report_lag"][go])
        report_parts.append(rec)
        if treated.any():
            potentials.append({k: v[treated] for k, v in pot.items()})
        batches.append(obs)
        cur = obs
    return batches


def _untreated_reentries(rng: np.random.Generator, pop: _Population, child: np.ndarray, day: np.ndarray,
                         prev_dis: np.ndarray, lag: np.ndarray, left: np.ndarray, extract: int) -> list[_Batch]:
    """Re-entries (untreated world) on ``day`` (NaN = none), each child at most ``left`` more deep."""
    batches: list[_Batch] = []
    while True:
        go = ~np.isnan(day) & (left > 0)
        if not go.any():
            return batches
        b = _start_batch(rng, pop, child[go], day[go], np.ones(int(go.sum()), bool), 2, extract,
                         prev_dis=prev_dis[go], report_lag=lag[go])
        batches.append(b)
        child, day, prev_dis, lag, left = b.child, b.w0["reentry"], b.w0["dis"], b.post["lag"], left[go] - 1


def _tpr_parents(rng: np.random.Generator, pop: _Population, child: np.ndarray, tpr: np.ndarray, dis: np.ndarray,
                 extract: int) -> tuple[np.ndarray, np.ndarray]:
    """Mother's and father's TPR days from the first TPR (mostly the same day for both)."""
    nf = pop.n_fam
    f = pop.fam[child]
    pattern = _choice(rng, {0: 0.65, 1: 0.20, 2: 0.10, 3: 0.05}, nf)[f]  # same day, one later, mother only, father only
    offset = np.floor(1 + 59 * rng.random(nf))[f]
    mother_first = (rng.random(nf) < 0.6)[f]
    later = tpr + offset
    later = np.where((later <= extract) & (np.isnan(dis) | (later <= dis)), later, np.nan)
    mom = np.where(pattern == 3, np.nan, np.where((pattern == 1) & ~mother_first, later, tpr))
    dad = np.where(pattern == 2, np.nan, np.where((pattern == 1) & mother_first, later, tpr))
    return mom, dad


def _solve_intercept(x: np.ndarray, target: float) -> float:
    """Intercept so that the mean of ``expit(a + x)`` equals ``target`` (bisection)."""
    if len(x) == 0:
        return float(np.log(target / (1 - target)))
    lo, hi = -15.0, 15.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _expit(mid + x).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _hours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hours of mentoring (log-normal, median 22) and their standardised log (the dose)."""
    z = np.clip(rng.normal(0.0, 1.0, n), -2.0, 2.0)
    hours = np.maximum(1.0, np.round(np.exp(np.log(22.0) + 0.6 * z) * 2) / 2)
    return hours, (np.log(hours) - np.log(22.0)) / 0.6


def _roster(rng: np.random.Generator, fam_idx: np.ndarray, enrol_day: np.ndarray, hours: np.ndarray,
            focal_child: np.ndarray, extract: int) -> dict[str, np.ndarray]:
    """Program roster: one row per enrolled family."""
    n = len(fam_idx)
    exit_day = enrol_day + 30.0 + np.floor(rng.gamma(2.0, 80.0, n))
    exit_day = np.where(exit_day <= extract, exit_day, np.nan)  # still enrolled at the extract date
    contacts = 1 + rng.poisson(hours / 1.6)
    role = _choice(rng, {0: 0.72, 1: 0.20, 2: 0.08}, n)
    # a few rows name a child instead of the family (resolved through the crosswalk)
    by_child = (rng.random(n) < 0.08) & (focal_child >= 0)
    return {"fam": fam_idx, "enrol": enrol_day, "exit": exit_day, "hours": hours, "contacts": contacts,
            "role": role, "by_child": by_child, "focal_child": focal_child}


# --------------------------------------------------------------------------- designs
@dataclass
class _Sim:
    """Everything a design simulation produces, before the layouts are built."""

    pop: _Population
    episodes: dict[str, np.ndarray]
    report_parts: list[dict[str, Any]]
    roster: dict[str, np.ndarray]
    potential: dict[str, np.ndarray]
    uptake: dict[str, Any]
    stays_home: np.ndarray


def _first_per_family(pop: _Population, children: np.ndarray) -> np.ndarray:
    """Per family, the first (youngest) of ``children`` (sorted child indexes), else -1."""
    out = np.full(pop.n_fam, -1)
    f, first = np.unique(pop.fam[children], return_index=True)
    out[f] = children[first]
    return out


def _rate(enrolled: np.ndarray, offered: np.ndarray, mask: np.ndarray) -> float:
    m = offered & mask
    return float(enrolled[m].sum() / max(int(m.sum()), 1))


def _simulate_in_care(rng: np.random.Generator, n_children: int, fx: Mapping[str, float], extract: int) -> _Sim:
    pop = _population(rng, n_children, p_infant=0.36, ref_from=_day(FIRST_DATE), ref_to=extract - 1)
    n, nf, fam = pop.n, pop.n_fam, pop.fam
    removed_f = rng.random(nf) < 0.75  # the other families are reported but never removed
    start_day = np.array([_day(c.program_start) for c in COUNTIES], dtype=float)

    # who is removed, and when: mostly together on the family's removal day
    removed = removed_f[fam].copy()
    stays_home = removed & (pop.rank > 0) & (rng.random(n) < 0.04)  # a sibling stays with the other parent
    removed &= ~stays_home
    rem = pop.ref[fam].copy()
    born_later = (removed & (pop.rank == 0) & (pop.fam_size[fam] > 1) & (rng.random(n) < 0.12)
                  & (pop.ref[fam] < extract - 450))
    nb = int(born_later.sum())
    pop.birth[born_later] = pop.ref[fam][born_later] + np.floor(30 + 370 * rng.random(nb))
    rem[born_later] = pop.birth[born_later] + np.floor(15 * rng.random(nb))
    # a handful removed at 18 or over, to exercise the age exclusion
    single = np.flatnonzero(removed & (pop.fam_size[fam] == 1))
    k = min(len(single), n // 1000)
    if k:
        pick = np.sort(rng.choice(single, k, replace=False))
        pop.birth[pick] = rem[pick] - np.floor((18.02 + 0.8 * rng.random(k)) * _YEAR)
    pop.age = (pop.ref[fam] - pop.birth) / _YEAR

    # the untreated history of every child: first removals (main), then re-entries after
    # discharges home. Earlier removals of a child are re-entries of this model, so every
    # episode, first or not, follows the same outcome model.
    mc = np.flatnonzero(removed)
    fm = fam[mc]
    main_lag = np.where(rem[mc] != pop.ref[fm], np.floor(4 * rng.random(len(mc))), np.floor(11 * rng.random(nf))[fm])
    b = _start_batch(rng, pop, mc, rem[mc], np.zeros(len(mc), bool), 1, extract, report_lag=main_lag)
    hist = [b, *_untreated_reentries(rng, pop, b.child, b.w0["reentry"], b.w0["dis"], b.post["lag"],
                                     np.full(len(mc), _MAX_REENTRIES), extract)]

    # the program: every removal is a referral. The family is offered the program d days
    # after each removal (mostly 5-120) if a child is still in care then with no TPR, the
    # program runs in its county and the family has not enrolled yet; it enrols at the
    # first offer it accepts. Before enrolment the untreated history is the observed one.
    e_f, offered_f = _enrolment(rng, pop, hist, start_day, fx, extract)
    enrolled = ~np.isnan(e_f)
    ef = np.flatnonzero(enrolled)
    hours_f, z_f = np.zeros(nf), np.zeros(nf)
    hours_f[ef], z_f[ef] = _hours(rng, len(ef))
    hr_f = fx["reunification_hr"] * np.exp(fx["dose_slope"] * z_f)  # more hours, a little more benefit

    # treated: every episode open on its family's enrolment day (at most one per child). The
    # program changes that episode and the child's history after it; the rest is untreated.
    treated_depth = np.full(n, -1)
    treated_k = []
    for k, h in enumerate(hist):
        e = e_f[pop.fam[h.child]]
        with np.errstate(invalid="ignore"):
            t = ~np.isnan(e) & (h.rem <= e) & (h.w0["dis_raw"] > e)
        treated_k.append(t)
        treated_depth[h.child[t]] = k
    report_parts: list[dict[str, Any]] = []
    potentials = []
    observed = []
    for k, h in enumerate(hist):
        t = treated_k[k]
        e = e_f[pop.fam[h.child]]
        td = treated_depth[h.child]
        keep = (td < 0) | (td >= k)  # episodes after a treated one are replaced below
        w1 = _treated_world(pop, h, t, e, hr_f[pop.fam[h.child]], fx, extract)
        obs, pot, rec = _observe(h, w1, t, e, keep)
        observed.append(obs)
        report_parts.append(rec)
        potentials.append(pot if k == 0 else {key: v[t] for key, v in pot.items()})
        if t.any():  # the treated world's re-entries (after enrolment: untreated episodes)
            after = _untreated_reentries(rng, pop, h.child[t], w1["reentry"][t], w1["dis"][t], h.post["lag"][t],
                                         np.full(int(t.sum()), _MAX_REENTRIES - k), extract)
            for a in after:
                o, _, r = _observe(a, a.w0, np.zeros(len(a.child), bool), np.full(len(a.child), np.nan))
                observed.append(o)
                report_parts.append(r)
    episodes = _concat_episodes(observed)

    tc = np.unique(np.concatenate([h.child[t] for h, t in zip(hist, treated_k, strict=True)]))
    focal = _first_per_family(pop, tc)  # the youngest treated child of each family
    roster = _roster(rng, ef, e_f[ef], hours_f[ef], focal[ef], extract)
    report_parts += _family_reports(rng, pop, removed_f)

    potential = {k: np.concatenate([p[k] for p in potentials]) for k in potentials[0]}
    potential["hours"] = np.where(potential["treated"], hours_f[fam[potential["child"]]], np.nan)
    # uptake by the family's characteristics at its first removal
    infant_f = np.zeros(nf, bool)
    infant_f[fm[(b.cov["age"] < 1) & (b.rem == pop.ref[fm])]] = True
    drugs_f = pop.parent[:, _RI["parent_drugs"]]
    uptake = {
        "families_offered": int(offered_f.sum()),
        "families_enrolled": int(enrolled.sum()),
        "rate": _rate(enrolled, offered_f, np.ones(nf, bool)),
        "rate_parent_drugs": _rate(enrolled, offered_f, drugs_f),
        "rate_no_parent_drugs": _rate(enrolled, offered_f, ~drugs_f),
        "rate_infant_in_family": _rate(enrolled, offered_f, infant_f),
        "rate_no_infant_in_family": _rate(enrolled, offered_f, ~infant_f),
    }
    return _Sim(pop, episodes, report_parts, roster, potential, uptake, stays_home)


_MAX_REENTRIES = 3  # re-entries after a child's first removal (episodes per child: at most 4)


def _enrolment(rng: np.random.Generator, pop: _Population, hist: list[_Batch], start_day: np.ndarray,
               fx: Mapping[str, float], extract: int) -> tuple[np.ndarray, np.ndarray]:
    """Enrolment day of each family (NaN = never) from its untreated history.

    Each removal day of a family (first removals, a newborn removed later, re-entries) is a
    referral: the program is offered ``d`` days later (d = 5 + Gamma(1.6, 28) days, at most
    300) if one of the family's children is then in care without a TPR and the program runs
    in the county. Uptake is confounded: parental drug use, an infant removed that day and
    some counties raise it; earlier removals and removals of teenagers only lower it. The
    family enrols at the first offer it accepts, so the history before enrolment is the
    untreated one and offers depend only on the past.
    Returns the enrolment day and whether the family was ever offered the program.
    """
    nf = pop.n_fam
    ch = np.concatenate([h.child for h in hist])
    rem = np.concatenate([h.rem for h in hist])
    dis = np.concatenate([h.w0["dis_raw"] for h in hist])
    tpr = np.concatenate([h.w0["tpr_raw"] for h in hist])
    age = np.concatenate([h.cov["age"] for h in hist])
    again = np.concatenate([np.full(len(h.child), h.kind == 2) for h in hist])
    f = pop.fam[ch]
    # referrals: the distinct (family, removal day) pairs
    key = f.astype("int64") * 1_000_000 + rem.astype("int64")
    ukey, inv = np.unique(key, return_inverse=True)
    n_ev = len(ukey)
    ev_f = (ukey // 1_000_000).astype("int64")
    ev_day = (ukey % 1_000_000).astype(float)
    infant = np.zeros(n_ev, bool)
    np.logical_or.at(infant, inv, age < 1)
    prior = np.zeros(n_ev, bool)
    np.logical_or.at(prior, inv, again)
    teen_only = np.ones(n_ev, bool)
    np.logical_and.at(teen_only, inv, age >= 13)
    d = np.minimum(300.0, 5.0 + np.floor(rng.gamma(1.6, 28.0, n_ev)))
    u = rng.random(n_ev)
    offer = ev_day + d
    # is a child of the family in care (no TPR yet) on the offer day? pair each referral
    # with every episode of its family
    order = np.argsort(f, kind="stable")
    fs = f[order]
    lo = np.searchsorted(fs, ev_f, side="left")
    cnt = np.searchsorted(fs, ev_f, side="right") - lo
    ev_rep = np.repeat(np.arange(n_ev), cnt)
    ep = order[np.repeat(lo, cnt) + (np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt))]
    o = offer[ev_rep]
    with np.errstate(invalid="ignore"):
        ok = (rem[ep] <= o) & (dis[ep] > o) & ~(tpr[ep] <= o)
    in_care = np.zeros(n_ev, bool)
    np.logical_or.at(in_care, ev_rep, ok)
    offered = in_care & (offer >= start_day[pop.county[ev_f]]) & (offer <= extract)
    drugs = pop.parent[ev_f, _RI["parent_drugs"]]
    x = (1.0 * drugs + 0.6 * infant + np.array([c.uptake for c in COUNTIES])[pop.county[ev_f]]
         - 0.25 * prior - 0.3 * teen_only)
    alpha = _solve_intercept(x[offered], fx["uptake"])
    accept = offered & (u < _expit(alpha + x))
    e_f = np.full(nf, np.inf)
    np.minimum.at(e_f, ev_f[accept], offer[accept])
    offered_f = np.zeros(nf, bool)
    offered_f[ev_f[offered]] = True
    return np.where(np.isfinite(e_f), e_f, np.nan), offered_f


def _simulate_prevention(rng: np.random.Generator, n_children: int, fx: Mapping[str, float], extract: int) -> _Sim:
    pop = _population(rng, n_children, p_infant=0.28, ref_from=_day("2011-01-01"), ref_to=extract - 1)
    n, nf, fam = pop.n, pop.n_fam, pop.fam
    start_day = np.array([_day(c.program_start) for c in COUNTIES], dtype=float)
    neglect = pop.parent[:, _RI["neglect"]]
    drugs = pop.parent[:, _RI["parent_drugs"]]
    n_prior = _choice(rng, {0: 0.6, 1: 0.25, 2: 0.15}, nf)
    infant_f = np.zeros(nf, bool)
    infant_f[fam[pop.age < 1]] = True
    county_effect = np.array([c.reunification for c in COUNTIES])[pop.county]
    # some families are removed at the index report (0-7 days after it): never offered the program
    at_report = rng.random(nf) < _expit(-1.6 + 0.5 * drugs + 0.3 * neglect + 0.2 * n_prior)
    at_report_day = pop.ref + np.floor(8 * rng.random(nf))

    # removal and substantiated re-report after the index report. Both clocks start 14 days
    # after it, so the removal report (filed on the removal day) and the re-report are always
    # new incidents under the 14-day rule.
    lp_rem = 0.35 * neglect + 0.30 * np.minimum(n_prior, 2) - county_effect + 0.5 * drugs + pop.frailty
    lp_rec = 0.30 * neglect + 0.25 * np.minimum(n_prior, 2) + 0.3 * drugs
    e_rem, e_rec = rng.standard_exponential(nf), rng.standard_exponential(nf)
    d_f = np.minimum(60.0, 3.0 + np.floor(rng.gamma(1.5, 10.0, nf)))
    e_f = pop.ref + d_f
    rem_untreated = pop.ref + 14.0 + _ceil_days(_weibull_time(e_rem, "removal", lp_rem))
    offered = ~at_report & (e_f >= start_day[pop.county]) & (e_f <= extract) & (rem_untreated > e_f)
    # confounded uptake: neglect, earlier reports and county (infants' families enrol more too)
    x = (0.5 * infant_f + 0.45 * neglect + 0.35 * np.minimum(n_prior, 2)
         + np.array([c.uptake for c in COUNTIES])[pop.county])
    alpha = _solve_intercept(x[offered], fx["uptake"])
    enrolled = offered & (rng.random(nf) < _expit(alpha + x))
    clock_start = np.where(enrolled, np.maximum(d_f - 14.0, 0.0), np.inf)
    world = []
    for start, hr_rem, hr_rec in ((np.full(nf, np.inf), 1.0, 1.0), (clock_start, fx["removal_hr"], fx["recurrence_hr"])):
        rem = np.where(at_report, at_report_day,
                       pop.ref + 14.0 + _ceil_days(_weibull_time_treated(e_rem, "removal", lp_rem, start, hr_rem)))
        rec = pop.ref + 14.0 + _ceil_days(_weibull_time_treated(e_rec, "prevention_recurrence", lp_rec, start, hr_rec))
        rec = np.where(rec < rem - 14.0, rec, np.nan)  # a re-report close to (or after) a removal is its report
        world.append({"rem": rem, "rec": rec})
    obs_rem = np.where(enrolled, world[1]["rem"], world[0]["rem"])
    obs_rec = np.where(enrolled, world[1]["rec"], world[0]["rec"])

    # children removed: born and under 18 on the removal day
    c_rem = obs_rem[fam]
    b18 = _birthday(pop.birth.astype("int64"), 18).astype(float)
    mc = np.flatnonzero((c_rem <= extract) & (pop.birth <= c_rem) & (c_rem < b18))
    fm = fam[mc]
    b = _start_batch(rng, pop, mc, c_rem[mc], np.zeros(len(mc), bool), 1, extract)
    # the index report led to the removals at the report; later removals are reported that day
    lag = np.where(at_report[fm], at_report_day[fm] - pop.ref[fm], 0.0)
    no = np.zeros(len(mc), bool)
    main, _, rec = _finish_batch(rng, pop, b, no, np.full(len(mc), np.nan), np.ones(len(mc)), fx, extract,
                                 np.full(len(mc), np.nan), lag)
    report_parts: list[dict[str, Any]] = [rec]
    none_f = np.full(nf, np.nan)
    later = _chain(rng, pop, main, extract, fx, none_f, np.ones(nf), report_parts, [])
    episodes = _concat_episodes([main, *later])

    # index reports (substantiated), earlier unsubstantiated reports, re-reports, later noise
    fams = np.arange(nf)
    # the index report has the kind of a removal report, so a removal at the report is that report
    report_parts.append(_family_event(pop, fams, pop.ref, kind=1, subst=True))
    for j in (1, 2):
        has = n_prior >= j
        day = pop.ref[has] - np.floor(120 + 1400 * rng.random(int(has.sum())))
        report_parts.append(_family_event(pop, fams[has], day, kind=0, subst=False))
    has = ~np.isnan(obs_rec)
    report_parts.append(_family_event(pop, fams[has], obs_rec[has], kind=3, subst=True))
    noise = rng.random(nf) < 0.25
    day = pop.ref[noise] + np.floor(30 + 1000 * rng.random(int(noise.sum())))
    keep = np.isnan(obs_rem[noise]) | (day < obs_rem[noise])
    report_parts.append(_family_event(pop, fams[noise][keep], day[keep], kind=0, subst=False))

    ef = np.flatnonzero(enrolled)
    hours_f = np.zeros(nf)
    hours_f[ef] = _hours(rng, len(ef))[0]
    focal = _first_per_family(pop, np.flatnonzero((pop.birth <= pop.ref[fam]) & (pop.ref[fam] < b18)))
    roster = _roster(rng, ef, e_f[ef], hours_f[ef], focal[ef], extract)

    potential = {"fam": fams, "ref": pop.ref, "enrol": np.where(enrolled, e_f, np.nan), "enrolled": enrolled,
                 "at_report": at_report}
    for wi in (0, 1):
        potential[f"rem_{wi}"] = world[wi]["rem"]
        potential[f"rec_{wi}"] = world[wi]["rec"]
    uptake = {
        "families_offered": int(offered.sum()),
        "families_enrolled": int(enrolled.sum()),
        "rate": _rate(enrolled, offered, np.ones(nf, bool)),
        "rate_neglect": _rate(enrolled, offered, neglect),
        "rate_no_neglect": _rate(enrolled, offered, ~neglect),
        "rate_infant_in_family": _rate(enrolled, offered, infant_f),
        "rate_no_infant_in_family": _rate(enrolled, offered, ~infant_f),
    }
    return _Sim(pop, episodes, report_parts, roster, potential, uptake, np.zeros(n, bool))


def _concat_episodes(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = ("child", "rem", "dis", "reason", "tpr", "kind", "prev_dis", "treated", "enrol", "report_lag")
    out = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in keys}
    order = np.lexsort((out["rem"], out["child"]))
    return {k: v[order] for k, v in out.items()}


# --------------------------------------------------------------------------- reports
def _family_event(pop: _Population, fams: np.ndarray, day: np.ndarray, kind: int, subst: bool | np.ndarray) -> dict[str, Any]:
    """A report about each family in ``fams``: one record per child (filtered later by age)."""
    sizes = pop.fam_size[fams]
    ev = np.repeat(np.arange(len(fams)), sizes)
    offs = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    child = pop.fam_start[fams][ev] + offs
    s = np.full(len(ev), subst) if isinstance(subst, bool) else np.asarray(subst)[ev]
    return {"child": child, "day": np.asarray(day, dtype=float)[ev], "kind": kind, "subst": s}


def _family_reports(rng: np.random.Generator, pop: _Population, removed_f: np.ndarray) -> list[dict[str, Any]]:
    """In-care design: unsubstantiated reports before a removal, and families never removed."""
    nf = pop.n_fam
    fams = np.arange(nf)
    one = removed_f & (rng.random(nf) < 0.40)
    two = one & (rng.random(nf) < 0.35)
    parts = []
    for has in (one, two):
        day = pop.ref[has] - np.floor(60 + 1100 * rng.random(int(has.sum())))
        parts.append(_family_event(pop, fams[has], day, kind=0, subst=False))
    never = ~removed_f
    for j in range(3):
        has = never & (rng.random(nf) < (1.0 if j == 0 else 0.35))
        day = pop.ref[has] + (0.0 if j == 0 else np.floor(30 + 1500 * rng.random(int(has.sum()))))
        subst = rng.random(int(has.sum())) < (0.35 if j == 0 else 0.20)
        parts.append(_family_event(pop, fams[has], day, kind=5, subst=subst))
    return parts


def _episode_reports(rng: np.random.Generator, pop: _Population, ep: dict[str, np.ndarray], stays_home: np.ndarray,
                     extract: int) -> list[dict[str, Any]]:
    """The report that led to each removal, reports while in care, and unsubstantiated re-reports."""
    # a few days before the removal, but not before birth (newborns are reported at birth)
    # nor on or before the previous discharge
    day = np.maximum(ep["rem"] - ep["report_lag"], pop.birth[ep["child"]])
    day = np.where(np.isnan(ep["prev_dis"]), day, np.maximum(day, ep["prev_dis"] + 1))
    parts: list[dict[str, Any]] = [{"child": ep["child"], "day": day, "kind": 1, "subst": np.ones(len(day), bool)}]
    # siblings who stayed home are named in the family's removal report (substantiated half the time)
    sh = np.flatnonzero(stays_home)
    if len(sh):
        main = ep["kind"] == 1
        first_day = np.full(pop.n_fam, np.nan)
        f_main = pop.fam[ep["child"][main]]
        order = np.lexsort((day[main], f_main))
        firsts = order[_group_first(f_main[order])]
        first_day[f_main[firsts]] = day[main][firsts]
        d = first_day[pop.fam[sh]]
        ok = ~np.isnan(d)
        parts.append({"child": sh[ok], "day": d[ok], "kind": 1, "subst": rng.random(int(ok.sum())) < 0.5})
    # maltreatment in care: at most one report per episode, 7+ days after removal and 30+ days
    # before discharge (so it never merges with a post-discharge re-report under the 14-day rule)
    end = np.where(np.isnan(ep["dis"]), extract, ep["dis"])
    span = end - 30.0 - (ep["rem"] + 7.0)
    years = np.maximum(end - ep["rem"], 0.0) / _YEAR
    has = (span > 0) & (rng.random(len(span)) < 1 - np.exp(-0.03 * years))
    at = ep["rem"][has] + 7.0 + np.floor(rng.random(int(has.sum())) * span[has])
    parts.append({"child": ep["child"][has], "day": at, "kind": 2, "subst": rng.random(int(has.sum())) < 0.3})
    # unsubstantiated re-reports after a discharge home
    noise = np.isin(ep["reason"], _HOME) & (rng.random(len(ep["reason"])) < 0.15)
    nd = ep["dis"][noise] + np.floor(20 + 880 * rng.random(int(noise.sum())))
    parts.append({"child": ep["child"][noise], "day": nd, "kind": 0, "subst": np.zeros(int(noise.sum()), bool)})
    return parts


def _assemble_reports(rng: np.random.Generator, pop: _Population, parts: list[dict[str, Any]], extract: int) -> dict[str, np.ndarray]:
    """Stack the report records, keep the valid ones and number the reports.

    A report is one (family, day, kind); each child named in it is one record. Children are
    named only if born and under 18 on the day; reports before FY2010 or after the extract
    date are not in the files.
    """
    child = np.concatenate([np.asarray(p["child"], dtype="int64") for p in parts])
    day = np.concatenate([np.asarray(p["day"], dtype=float) for p in parts])
    kind = np.concatenate([np.full(len(p["child"]), p["kind"], dtype="int8") for p in parts])
    subst = np.concatenate([np.broadcast_to(np.asarray(p["subst"], dtype=bool), (len(p["child"]),)) for p in parts])
    ok = ~np.isnan(day) & (day >= _day(NCANDS_START)) & (day <= extract) & (pop.birth[child] <= day)
    child, day, kind, subst = child[ok], day[ok].astype("int64"), kind[ok], subst[ok]
    ok = day < _birthday(pop.birth[child].astype("int64"), 18)
    child, day, kind, subst = child[ok], day[ok], kind[ok], subst[ok]
    fam = pop.fam[child]
    order = np.lexsort((child, kind, fam, day))
    child, day, kind, subst, fam = child[order], day[order], kind[order], subst[order], fam[order]
    # one record per child and report: a child named twice is substantiated if either is
    dup = np.zeros(len(child), bool)
    dup[1:] = (child[1:] == child[:-1]) & (day[1:] == day[:-1]) & (kind[1:] == kind[:-1])
    if dup.any():
        heads = np.flatnonzero(~dup)
        subst = np.maximum.reduceat(subst.astype("int8"), heads).astype(bool)
        child, day, kind, fam = child[heads], day[heads], kind[heads], fam[heads]
    new_report = np.ones(len(child), bool)
    new_report[1:] = (day[1:] != day[:-1]) | (fam[1:] != fam[:-1]) | (kind[1:] != kind[:-1])
    report_no = np.cumsum(new_report)
    # maltreatment types: the family's removal reasons shape the first type; a quarter have two
    n = len(child)
    par = pop.parent[fam]
    t1 = _choice(rng, {2: 0.70, 3: 0.08, 5: 0.12, 8: 0.05, 9: 0.05}, n)
    t1 = np.where(par[:, _RI["physical_abuse"]] & (rng.random(n) < 0.7), 1, t1)
    t1 = np.where(par[:, _RI["sexual_abuse"]] & (rng.random(n) < 0.7), 4, t1)
    t2 = np.where(rng.random(n) < 0.25, _choice(rng, {1: 0.3, 2: 0.4, 5: 0.3}, n), 0)
    t2 = np.where(t2 == t1, 0, t2)
    lev_sub = np.where(rng.random(n) < 0.85, 1, 2)  # substantiated or indicated
    # not a CFSR victim: unsubstantiated, alternative-response victim (3) and non-victim (4), closed (7)
    lev_un = _choice(rng, {5: 0.75, 3: 0.08, 4: 0.07, 7: 0.10}, n)
    lev1 = np.where(subst, lev_sub, lev_un)
    lev2 = np.where(t2 > 0, np.where(subst, _choice(rng, {1: 0.4, 2: 0.2, 5: 0.4}, n), lev_un), 0)
    return {"child": child, "day": day, "kind": kind, "subst": subst, "report_no": report_no,
            "t1": t1.astype("int8"), "t2": t2.astype("int8"), "lev1": lev1.astype("int8"), "lev2": lev2.astype("int8")}


# --------------------------------------------------------------------------- episodes, finishing touches
def _finish_episodes(rng: np.random.Generator, pop: _Population, ep: dict[str, np.ndarray], extract: int) -> dict[str, np.ndarray]:
    """Episode numbers, first removal, placements, settings, removal reasons and TPR by parent."""
    child = ep["child"]
    n = len(child)
    first = _group_first(child)
    grp = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ep["epno"] = (np.arange(n) - starts[grp] + 1).astype("int16")
    ep["rem1"] = ep["rem"][starts][grp]
    end = np.where(np.isnan(ep["dis"]), extract, ep["dis"])
    years = np.maximum(end - ep["rem"], 0.0) / _YEAR
    age = (ep["rem"] - pop.birth[child]) / _YEAR
    teen = age >= 13
    ep["moves"] = rng.poisson(0.9 * years ** 0.8 * np.where(teen, 1.5, 1.0)).astype("int16")
    base = np.where(
        teen,
        _choice(rng, {2: 0.25, 3: 0.35, 4: 0.20, 5: 0.15, 6: 0.05}, n),
        _choice(rng, {2: 0.40, 3: 0.55, 4: 0.02, 5: 0.03}, n),
    )
    base = np.where((base == 6) & (age < 16), 3, base)
    reason = ep["reason"]
    final = np.where((reason == _R["reunification"]) & (rng.random(n) < 0.3), 8, base)  # trial home visit
    final = np.where(reason == _R["runaway"], 7, final)
    final = np.where(reason == _R["adoption"], 1, final)
    final = np.where((reason == _R["emancipation"]) & (rng.random(n) < 0.4), 6, final)
    ep["setting_base"], ep["setting_final"] = base.astype("int8"), final.astype("int8")
    ep["goal_emancipation"] = teen & (rng.random(n) < 0.5)
    # removal reasons: the family's (parent) reasons plus the child's own
    reasons = pop.parent[pop.fam[child]].copy()
    reasons[:, _RI["child_behavior"]] = rng.random(n) < np.where(teen, 0.35, np.where(age >= 6, 0.08, 0.0))
    reasons[:, _RI["child_drugs"]] = teen & (rng.random(n) < 0.08)
    reasons[:, _RI["child_alcohol"]] = teen & (rng.random(n) < 0.03)
    reasons[:, _RI["child_disability"]] = rng.random(n) < 0.03
    # every removal has a reason: neglect, or a caretaker unable to cope
    none = ~reasons.any(axis=1)
    coping = rng.random(n) < 0.5
    reasons[none & ~coping, _RI["neglect"]] = True
    reasons[none & coping, _RI["caretaker_unable_to_cope"]] = True
    ep["reasons"] = reasons
    ep["tpr_m"], ep["tpr_f"] = _tpr_parents(rng, pop, child, ep["tpr"], ep["dis"], extract)
    return ep


# --------------------------------------------------------------------------- ids
def _rec_key(child: np.ndarray) -> np.ndarray:
    """Numeric value of each child's RecNumbr (a bijective scramble of its position)."""
    return (np.asarray(child, dtype="int64") * 387_420_489 + 12_345_678) % 1_000_000_000


def _ch_key(child: np.ndarray) -> np.ndarray:
    """Numeric value of each child's NCANDS ChID."""
    return (np.asarray(child, dtype="int64") * 282_475_249 + 98_765_431) % 1_000_000_000


def _ids(n: int, in_care: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RecNumbr (children ever in care, else None), ChID (all) and the canonical child_id.

    RecNumbr is a 10-digit string that always starts with 0 (ids are text: a loader that reads
    them as numbers loses the zero and breaks every link); ChID is ``C`` + 9 digits. The
    canonical child_id is the RecNumbr of a child ever in foster care, else the ChID, which is
    what the NCANDS preset gets from ``AFCARSID`` / ``ChID``.
    """
    idx = np.arange(n, dtype="int64")
    recnumbr = np.array([f"{k:010d}" for k in _rec_key(idx).tolist()], dtype=object)
    chid = np.array([f"C{k:09d}" for k in _ch_key(idx).tolist()], dtype=object)
    child_id = np.where(in_care, recnumbr, chid)
    return np.where(in_care, recnumbr, None), chid, child_id


# --------------------------------------------------------------------------- layouts
def _int8_na(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype("int8"), np.asarray(missing, dtype=bool))


def _afcars_layout(pop: _Population, ep: dict[str, np.ndarray], recnumbr: np.ndarray, extract: int) -> pd.DataFrame:
    """AFCARS records: one per child per period in care, describing the episode as of period end.

    The record of the last (partial) period describes the child as of the extract date.
    TPR dates, the placement count, the setting and the case goal are those known at the
    record's date; DoDFCDt and DISREASN are only on the record of the discharge period.
    """
    dis = ep["dis"]
    last = np.where(np.isnan(dis), extract, dis).astype("int64")
    p0 = _period_of(ep["rem"].astype("int64"))
    p1 = _period_of(last)
    n_rec = p1 - p0 + 1
    e = np.repeat(np.arange(len(p0)), n_rec)
    period = p0[e] + (np.arange(int(n_rec.sum())) - np.repeat(np.cumsum(n_rec) - n_rec, n_rec))
    order = np.lexsort((_rec_key(ep["child"][e]), period))
    e, period = e[order], period[order]
    child = ep["child"][e]
    p_extract = int(_period_of(np.array([extract]))[0])
    asof = np.minimum(_period_end(period), extract).astype(float)
    y, m, _ = _ymd(asof.astype("int64"))
    rem, dis_e, reason = ep["rem"][e], dis[e], ep["reason"][e]
    is_dis = ~np.isnan(dis_e) & (period == _period_of(np.nan_to_num(dis_e).astype("int64")))
    end = np.where(np.isnan(dis_e), extract, dis_e)
    frac = np.clip((asof - rem) / np.maximum(end - rem, 1.0), 0.0, 1.0)
    moves = ep["moves"][e]
    numplep = 1 + np.where(is_dis | (period == p_extract), moves, np.floor(moves * frac)).astype("int16")
    tpr_known = np.fmin(ep["tpr_m"][e], ep["tpr_f"][e]) <= asof
    setting = np.where(is_dis, ep["setting_final"][e],
                       np.where(tpr_known & (reason == _R["adoption"]), 1, ep["setting_base"][e]))
    age_asof = (asof - pop.birth[child]) / _YEAR
    goal = np.full(len(e), 1, dtype="int8")
    goal[is_dis & (reason == _R["relative"])] = 2
    goal[is_dis & (reason == _R["guardianship"])] = 6
    goal[ep["goal_emancipation"][e] & (age_asof >= 16)] = 5
    goal[tpr_known] = 3
    goal[asof - rem < 45] = 7
    pmin = int(period.min()) if len(period) else p_extract
    pmax = int(period.max()) if len(period) else p_extract
    cols: dict[str, Any] = {
        "_file": pd.Categorical.from_codes((period - pmin).astype("int32"),
                                           [afcars_file_name(p) for p in range(pmin, pmax + 1)]),
        "State": np.full(len(e), STATE_FIPS, dtype="int8"),
        "RepDatYr": y.astype("int16"),
        "RepDatMo": m.astype("int8"),
        "FIPSCode": pd.Categorical.from_codes(pop.county[pop.fam[child]].astype("int32"), [c.fips for c in COUNTIES]),
        "RecNumbr": recnumbr[child],
        "DOB": _to_datetime(pop.birth[child]),
        "Sex": pop.sex[child],
    }
    for j, name in enumerate(_RACE_FLAGS):
        cols[name] = pop.race_flags[child, j]
    cols["HisOrgin"] = pop.hisp[child]
    cols["Rem1Dt"] = _to_datetime(ep["rem1"][e])
    cols["TotalRem"] = ep["epno"][e]
    cols["DLstFCDt"] = _to_datetime(ep["prev_dis"][e])
    cols["LatRemDt"] = _to_datetime(rem)
    cols["NumPlep"] = numplep
    flags = np.where(ep["reasons"][e], 1, 2).astype("int8")
    for j, element in enumerate(schema.REMOVAL_REASONS.values()):
        cols[element] = flags[:, j]
    cols["CurPlSet"] = setting.astype("int8")
    cols["CaseGoal"] = goal
    cols["TPRMomDt"] = _to_datetime(np.where(ep["tpr_m"][e] <= asof, ep["tpr_m"][e], np.nan))
    cols["TPRDadDt"] = _to_datetime(np.where(ep["tpr_f"][e] <= asof, ep["tpr_f"][e], np.nan))
    cols["DoDFCDt"] = _to_datetime(np.where(is_dis, dis_e, np.nan))
    cols["DISREASN"] = _int8_na(reason + 1, ~is_dis)
    return pd.DataFrame(cols)


def _ncands_layout(pop: _Population, rep: dict[str, np.ndarray], recnumbr: np.ndarray, chid: np.ndarray) -> pd.DataFrame:
    """NCANDS child-file records: one per child per report, in report order."""
    order = np.lexsort((_ch_key(rep["child"]), rep["report_no"]))
    child, day = rep["child"][order], rep["day"][order]
    y, m, _ = _ymd(day)
    fy = y + (m >= 10)
    n = len(child)
    fmin = int(fy.min()) if n else 2010
    fmax = int(fy.max()) if n else 2010
    t2, l2 = rep["t2"][order], rep["lev2"][order]
    empty = _int8_na(np.zeros(n, "int8"), np.ones(n, bool))
    cols: dict[str, Any] = {
        "_file": pd.Categorical.from_codes((fy - fmin).astype("int32"), [f"CF{f}" for f in range(fmin, fmax + 1)]),
        "SubYr": fy.astype("int16"),
        "StaTerr": np.full(n, STATE_ABBR, dtype=object),
        "RptID": np.array([f"R{k:09d}" for k in rep["report_no"][order].tolist()], dtype=object),
        "ChID": chid[child],
        "RptDt": _to_datetime(day.astype(float)),
        "RptCnty": pd.Categorical.from_codes(pop.county[pop.fam[child]].astype("int32"), [c.fips for c in COUNTIES]),
        "AFCARSID": recnumbr[child],
        "ChAge": _age_years(pop.birth[child].astype("int64"), day).astype("int8"),
        "ChSex": pop.sex[child],
        "ChBDate": _to_datetime(pop.birth[child]),
    }
    for j, name in enumerate(_NCANDS_RACE):
        cols[name] = pop.race_flags[child, j]
    hisp = pop.hisp[child]
    cols["CEthn"] = np.where(hisp == 3, 9, hisp).astype("int8")
    cols["ChMal1"], cols["Mal1Lev"] = rep["t1"][order], rep["lev1"][order]
    cols["ChMal2"], cols["Mal2Lev"] = _int8_na(t2, t2 == 0), _int8_na(l2, t2 == 0)
    for k in (3, 4):
        cols[f"ChMal{k}"], cols[f"Mal{k}Lev"] = empty.copy(), empty.copy()
    return pd.DataFrame(cols)


def _canonical(sim: _Sim, ep: dict[str, np.ndarray], rep: dict[str, np.ndarray], child_id: np.ndarray,
               extract: int) -> dict[str, pd.DataFrame]:
    """The five canonical tables (schema dtypes), restricted to children present in the files."""
    pop = sim.pop
    present = np.zeros(pop.n, bool)
    present[ep["child"]] = True
    present[rep["child"]] = True
    # the ids' text order: RecNumbr ("0" + 9 digits) before ChID ("C" + 9 digits), each numeric
    in_care = np.zeros(pop.n, bool)
    in_care[ep["child"]] = True
    id_key = np.where(in_care, _rec_key(np.arange(pop.n)), 1_000_000_000 + _ch_key(np.arange(pop.n)))
    kids = np.flatnonzero(present)
    kids = kids[np.argsort(id_key[kids], kind="stable")]
    fam_id = np.array([f"F{f + 1:07d}" for f in range(pop.n_fam)], dtype=object)
    county = np.array([c.fips for c in COUNTIES], dtype=object)
    hisp = pop.hisp[kids]
    children = pd.DataFrame({
        "child_id": child_id[kids],
        "birth_date": _to_datetime(pop.birth[kids]),
        "family_id": fam_id[pop.fam[kids]],
        "sex": np.where(pop.sex[kids] == 1, "male", "female"),
        "race_ethnicity": _race_ethnicity(pop.race_flags[kids], hisp),
        "hispanic": pd.arrays.BooleanArray(hisp == 1, hisp == 3),
        "county": county[pop.county[pop.fam[kids]]],
    })
    families = children[["child_id", "family_id"]].copy()

    reasons_names = np.array(schema.DISCHARGE_REASONS, dtype=object)
    settings = np.array(schema.PLACEMENT_SETTINGS, dtype=object)
    discharged = ~np.isnan(ep["dis"])
    epi: dict[str, Any] = {
        "child_id": child_id[ep["child"]],
        "removal_date": _to_datetime(ep["rem"]),
        "discharge_date": _to_datetime(ep["dis"]),
        "discharge_reason": np.where(discharged, reasons_names[np.maximum(ep["reason"], 0)], None),
    }
    for j, reason in enumerate(_REASONS):
        epi[f"removal_{reason}"] = ep["reasons"][:, j]
    epi["placement_setting"] = settings[np.where(discharged, ep["setting_final"], ep["setting_base"]) - 1]
    epi["placements"] = 1 + ep["moves"].astype("int64")
    epi["county"] = county[pop.county[pop.fam[ep["child"]]]]
    epi["tpr_mother_date"] = _to_datetime(ep["tpr_m"])
    epi["tpr_father_date"] = _to_datetime(ep["tpr_f"])
    episodes = pd.DataFrame(epi).iloc[np.lexsort((ep["rem"], id_key[ep["child"]]))].reset_index(drop=True)

    names = {0: ""} | {k: v for k, v in _MAL_TYPES.items()}
    lookup = np.empty((10, 10), dtype=object)
    for a in range(10):
        for b in range(10):
            na, nb = names.get(a, "other"), names.get(b, "other")
            lookup[a, b] = f"{na};{nb}" if b else na
    reports = pd.DataFrame({
        "report_id": np.array([f"R{k:09d}" for k in rep["report_no"].tolist()], dtype=object),
        "child_id": child_id[rep["child"]],
        "report_date": _to_datetime(rep["day"].astype(float)),
        "substantiated": np.isin(rep["lev1"], (1, 2)) | np.isin(rep["lev2"], (1, 2)),
        # types in ChMal code order (the second type is blank when there is only one)
        "maltreatment_types": lookup[np.where(rep["t2"] > 0, np.minimum(rep["t1"], rep["t2"]), rep["t1"]),
                                     np.where(rep["t2"] > 0, np.maximum(rep["t1"], rep["t2"]), 0)],
    })
    # report numbers follow the report dates, so this is date, report, child order
    reports = reports.iloc[np.lexsort((id_key[rep["child"]], rep["report_no"]))].reset_index(drop=True)

    r = sim.roster
    by_child = r["by_child"]
    roles = np.array(schema.PARENT_ROLES, dtype=object)
    participation = pd.DataFrame({
        "family_id": np.where(by_child, None, fam_id[r["fam"]]),
        "child_id": np.where(by_child, child_id[np.maximum(r["focal_child"], 0)], None),
        "enrolled_date": _to_datetime(r["enrol"]),
        "exit_date": _to_datetime(r["exit"]),
        "hours": r["hours"].astype("float64"),
        "contacts": r["contacts"].astype("int64"),
        "parent_role": roles[r["role"]],
    })
    participation = participation.iloc[np.argsort(r["enrol"], kind="stable")].reset_index(drop=True)
    return {
        "children": schema.coerce_table("children", children),
        "families": schema.coerce_table("families", families),
        "episodes": schema.coerce_table("episodes", episodes),
        "reports": schema.coerce_table("reports", reports),
        "participation": schema.coerce_table("participation", participation),
    }


# --------------------------------------------------------------------------- truth
def _risk(event_1: np.ndarray, event_0: np.ndarray) -> dict[str, Any]:
    """Risks in both worlds, their difference and ratio (rounded for a stable truth.json)."""
    n = int(len(event_1))
    r1 = float(event_1.mean()) if n else None
    r0 = float(event_0.mean()) if n else None
    rr = None if not n or r0 == 0 else r1 / r0
    return {
        "n": n,
        "events_treated": int(event_1.sum()),
        "events_untreated": int(event_0.sum()),
        "risk_treated": _round(r1),
        "risk_untreated": _round(r0),
        "risk_difference": _round(None if r1 is None else r1 - r0),
        "risk_ratio": _round(rr),
    }


def _round(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _cohort_mask(ep: dict[str, np.ndarray], pop: _Population, lo: int, hi: int) -> np.ndarray:
    """In-care analysis units: first removal in the window, 8+ day stay, under 18 at removal."""
    child = ep["child"]
    in_win = (ep["rem"] >= lo) & (ep["rem"] <= hi)
    idx = np.flatnonzero(in_win)
    first = idx[_group_first(child[idx])]  # episodes are sorted by child, then removal
    unit = np.zeros(len(child), bool)
    unit[first] = True
    b18 = _birthday(pop.birth[child].astype("int64"), 18)
    with np.errstate(invalid="ignore"):
        short = ~np.isnan(ep["dis"]) & (ep["dis"] - ep["rem"] < 8)
    return unit & (ep["rem"] < b18) & ~short


def _truth_in_care(sim: _Sim, ep: dict[str, np.ndarray], rep: dict[str, np.ndarray], extract: int,
                   lo: int, hi: int) -> tuple[dict[str, Any], dict[str, Any]]:
    pop, pot = sim.pop, sim.potential
    unit = _cohort_mask(ep, pop, lo, hi)
    # the potential outcomes of each treated unit (episodes are keyed by child and removal day)
    key_ep = ep["child"].astype("int64") * 100_000 + ep["rem"].astype("int64")
    key_pot = pot["child"].astype("int64") * 100_000 + pot["rem"].astype("int64")
    tu = np.flatnonzero(unit & ep["treated"])
    pos = np.searchsorted(key_pot, key_ep[tu], sorter=np.argsort(key_pot, kind="stable"))
    rows = np.argsort(key_pot, kind="stable")[pos]
    assert np.array_equal(key_pot[rows], key_ep[tu]), "every treated unit has potential outcomes"
    p = {k: v[rows] for k, v in pot.items()}
    e = p["enrol"]
    reun, perm = _R["reunification"], np.array(_PERMANENCY)
    effects: dict[str, Any] = {}
    w12 = e + 365 <= extract
    with np.errstate(invalid="ignore"):
        r = [(p[f"reason_{w}"] == reun) & (p[f"dis_{w}"] - e <= 365) for w in (0, 1)]
        effects["reunified_12m"] = _risk(r[1][w12], r[0][w12])
        r = [np.isin(p[f"reason_{w}"], perm) & (p[f"dis_{w}"] - e <= 365) & (p[f"dis_{w}"] < p["b18"]) for w in (0, 1)]
        effects["permanency_12m"] = _risk(r[1][w12], r[0][w12])
        w24 = e + 730 <= extract
        r = [p[f"tpr_{w}"] - e <= 730 for w in (0, 1)]
        effects["tpr_24m"] = _risk(r[1][w24], r[0][w24])
        # re-entry and recurrence: units reunified in both worlds, window observed in both
        both = (p["reason_0"] == reun) & (p["reason_1"] == reun)
        obs12 = both & (p["dis_0"] + 365 <= extract) & (p["dis_1"] + 365 <= extract)
        r = [p[f"reentry_{w}"] - p[f"dis_{w}"] <= 365 for w in (0, 1)]
        effects["reentry_12m"] = _risk(r[1][obs12], r[0][obs12])
        first_rec = [np.fmin(p[f"recurrence_{w}"], p[f"reentry_report_{w}"]) for w in (0, 1)]
        r = [first_rec[w] - p[f"dis_{w}"] <= 365 for w in (0, 1)]
        effects["recurrence_12m"] = _risk(r[1][obs12], r[0][obs12])
        # the observed (treated-world) re-entry among all treated units reunified with the window observed
        ob = (p["reason_1"] == reun) & (p["dis_1"] + 365 <= extract)
        effects["reentry_12m_observed_treated"] = {
            "n": int(ob.sum()), "events": int((p["reentry_1"][ob] - p["dis_1"][ob] <= 365).sum()),
            "risk": _round(float((p["reentry_1"][ob] - p["dis_1"][ob] <= 365).mean()) if ob.any() else None),
        }

    # the generator's own counts by arm, from the observed episodes
    treated = ep["treated"]
    nxt_rem = np.full(len(ep["rem"]), np.nan)
    same_child = np.zeros(len(ep["rem"]), bool)
    same_child[:-1] = ep["child"][1:] == ep["child"][:-1]
    nxt_rem[:-1] = np.where(same_child[:-1], ep["rem"][1:], np.nan)
    tpr_any = np.fmin(ep["tpr_m"], ep["tpr_f"])
    fam = pop.fam[ep["child"]]
    enrolled_any = np.zeros(pop.n_fam, bool)
    enrolled_any[sim.roster["fam"]] = True
    counts = {}
    with np.errstate(invalid="ignore"):
        for arm, mask in (("treated", unit & treated), ("comparison", unit & ~treated)):
            reunified = mask & (ep["reason"] == reun)
            counts[arm] = {
                "children": int(mask.sum()),
                "families": int(len(np.unique(fam[mask]))),
                "reunifications": int(reunified.sum()),
                "tpr_within_24m_of_removal": int((mask & (tpr_any - ep["rem"] <= 730)).sum()),
                "reentries_within_12m_of_reunification": int((reunified & (nxt_rem - ep["dis"] <= 365)).sum()),
            }
        comp = unit & ~treated
        enrol_day = np.full(pop.n_fam, np.nan)
        enrol_day[sim.roster["fam"]] = sim.roster["enrol"]
        counts["comparison"]["family_enrolled_in_another_episode"] = int((comp & enrolled_any[fam]).sum())
        counts["comparison"]["family_enrolled_before_this_removal"] = int((comp & (enrol_day[fam] < ep["rem"])).sum())
    return effects, counts


def _truth_prevention(sim: _Sim, ep: dict[str, np.ndarray], rep: dict[str, np.ndarray], extract: int,
                      lo: int, hi: int, window_days: int) -> tuple[dict[str, Any], dict[str, Any]]:
    pop, pot = sim.pop, sim.potential
    # units: each child's first report (any) in the window, not in care that day, under 18
    child, day = rep["child"], rep["day"].astype(float)
    order = np.lexsort((day, child))
    child, day = child[order], day[order]
    in_win = (day >= lo) & (day <= hi)
    idx = np.flatnonzero(in_win)
    first = idx[_group_first(child[idx])]
    u_child, u_day = child[first], day[first]
    # in care on the report day?
    ep_child, ep_rem = ep["child"], ep["rem"]
    ep_end = np.where(np.isnan(ep["dis"]), np.inf, ep["dis"])
    k_ep = ep_child.astype(float) * 1e6 + ep_rem
    k_u = u_child.astype(float) * 1e6 + u_day
    if len(k_ep):
        j = np.searchsorted(k_ep, k_u, side="right") - 1  # latest removal on or before the report
        jj = np.clip(j, 0, len(k_ep) - 1)
        in_care = (j >= 0) & (ep_child[jj] == u_child) & (ep_end[jj] > u_day)
    else:
        in_care = np.zeros(len(u_child), bool)
    b18 = _birthday(pop.birth[u_child].astype("int64"), 18)
    keep = ~in_care & (u_day < b18)
    u_child, u_day, b18 = u_child[keep], u_day[keep], b18[keep]
    f = pop.fam[u_child]
    enrol = pot["enrol"][f]
    # first removal on or after the report
    nxt_rem = np.full(len(u_child), np.nan)
    if len(k_ep):
        j2 = np.searchsorted(k_ep, u_child.astype(float) * 1e6 + u_day, side="left")
        j2c = np.clip(j2, 0, len(k_ep) - 1)
        nxt_rem = np.where((j2 < len(k_ep)) & (ep_child[j2c] == u_child), ep_rem[j2c], np.nan)
    with np.errstate(invalid="ignore"):
        treated = (enrol >= u_day) & (enrol <= u_day + window_days) & (enrol <= extract)
        treated &= np.isnan(nxt_rem) | (nxt_rem >= enrol)
        designed = u_day == pot["ref"][f]  # the unit's index is its family's index report
    assert not (treated & ~designed).any(), "enrolment follows the designed index report"
    t = treated
    e = enrol[t]
    effects: dict[str, Any] = {}
    w12 = e + 365 <= extract
    with np.errstate(invalid="ignore"):
        rem = [pot[f"rem_{w}"][f[t]] for w in (0, 1)]
        rec = [pot[f"rec_{w}"][f[t]] for w in (0, 1)]
        r = [(rem[w] - e <= 365) & (rem[w] < b18[t]) for w in (0, 1)]
        effects["removed_12m"] = _risk(r[1][w12], r[0][w12])
        # first qualifying substantiated report after the index: the re-report (if after
        # enrolment) or the removal's report, whichever comes first
        first = [np.fmin(np.where(rec[w] > e, rec[w], np.nan), rem[w]) for w in (0, 1)]
        r = [(first[w] - e <= 365) & (first[w] < b18[t]) for w in (0, 1)]
        effects["recurrence_12m"] = _risk(r[1][w12], r[0][w12])

    # counts by arm from the observed data
    subst_days = rep["day"][rep["subst"]].astype(float)
    subst_child = rep["child"][rep["subst"]]
    o = np.lexsort((subst_days, subst_child))
    sc, sd = subst_child[o], subst_days[o]
    prev_same = np.zeros(len(sc), bool)
    prev_same[1:] = sc[1:] == sc[:-1]
    gap = np.where(prev_same, sd - np.concatenate([[np.nan], sd[:-1]]), np.inf)
    qualifying = gap > 14
    qc, qd = sc[qualifying], sd[qualifying]
    kq = qc.astype(float) * 1e6 + qd
    start = np.maximum(u_day, u_day + 14)
    nxt_rec = np.full(len(u_child), np.nan)
    if len(kq):
        jq = np.searchsorted(kq, u_child.astype(float) * 1e6 + start, side="right")
        jqc = np.clip(jq, 0, len(kq) - 1)
        nxt_rec = np.where((jq < len(kq)) & (qc[jqc] == u_child), qd[jqc], np.nan)
    counts = {}
    with np.errstate(invalid="ignore"):
        for arm, mask in (("treated", treated), ("comparison", ~treated)):
            counts[arm] = {
                "children": int(mask.sum()),
                "families": int(len(np.unique(f[mask]))),
                "removals_within_12m_of_report": int((mask & (nxt_rem - u_day <= 365) & (nxt_rem < b18)).sum()),
                "recurrences_within_12m_of_report": int((mask & (nxt_rec - u_day <= 365) & (nxt_rec < b18)).sum()),
            }
    return effects, counts


_DEFINITIONS_IN_CARE = {
    "cohort": "Children whose first removal dated in [entry_from, entry_to] (inclusive) is the unit episode; "
              "excluded: stays under 8 days (discharge_date - removal_date < 8) and removal on or after the 18th "
              "birthday (Feb 29 births: Feb 28). Episodes are those in the extract (AFCARS files = canonical/episodes.csv).",
    "treated": "A parent of the child's family enrolled (participation enrolled_date) on or after the removal date and "
               "before the discharge date (or with the episode open at the extract date). Comparison = every other "
               "cohort unit. counts.comparison.family_enrolled_in_another_episode counts comparison units whose family "
               "enrolled outside this episode, of which family_enrolled_before_this_removal enrolled before the removal (a "
               "cohort may drop them).",
    "index_date": "Treated units: the enrolment date.",
    "dose": "A treated family's reunification hazard ratio is reunification_hr * exp(dose_slope * z), z = "
            "(log(hours) - log(22)) / 0.6 clipped to [-2, 2] (hours are log-normal with median 22); the other hazard "
            "ratios do not depend on hours.",
    "reunified_12m": "Discharge with reason reunification within 365 days after the index date (discharge_date - "
                     "index <= 365); treated units with index + 365 <= extract_date. Risk under treatment from the "
                     "simulated treated world, under no treatment from the untreated world of the same units.",
    "permanency_12m": "As reunified_12m with reasons reunification, relative, adoption, guardianship, before the 18th birthday.",
    "tpr_24m": "TPR of either parent (the earlier of tpr_mother_date and tpr_father_date) on or before index + 730 days "
               "(a TPR before enrolment counts, as a cohort that clips days at 0 does); treated units with "
               "index + 730 <= extract_date.",
    "reentry_12m": "Next removal within 365 days after a reunification discharge; treated units discharged to "
                   "reunification in BOTH worlds, with discharge + 365 <= extract_date in both.",
    "recurrence_12m": "First substantiated report (any MalNLev in 1, 2) after a reunification discharge, within 365 days; "
                      "same units as reentry_12m. Reports are more than 14 days after the previous substantiated report "
                      "by construction (in-care reports end 30 days before discharge; re-reports start 15 days after it).",
    "reentry_12m_observed_treated": "Observed (treated-world) re-entry within 365 days among all treated units "
                                    "discharged to reunification with discharge + 365 <= extract_date.",
    "counts": "Observed data, default cohort, by arm: children (units), families, reunifications (cohort episode "
              "discharged to reunification by the extract date, any time), tpr_within_24m_of_removal (TPR of either "
              "parent <= removal + 730 days), reentries_within_12m_of_reunification (cohort episode discharged to "
              "reunification and the child's next removal <= discharge + 365 days). No window-completeness rule.",
}

_DEFINITIONS_PREVENTION = {
    "cohort": "Each child's first maltreatment report of any kind dated in [entry_from, entry_to]; excluded: in "
              "out-of-home care on the report date, aged 18 or over on it.",
    "treated": "The family enrolled within enrollment_window_days (60) after the unit's report and before any removal "
               "on or after the report. Every treated unit's report is its family's (substantiated) index report.",
    "index_date": "Treated units: the enrolment date.",
    "removed_12m": "First removal after the index within 365 days, before the 18th birthday; treated units with "
                   "index + 365 <= extract_date; both worlds simulated.",
    "recurrence_12m": "First substantiated report dated after the index and more than 14 days after the index report, "
                      "within 365 days of the index, before the 18th birthday. The removal of a family is reported on "
                      "the removal day and both clocks start 14 days after the index report, so every such report is a "
                      "new incident.",
    "removed_at_report": "Families removed 0-7 days after the index report are never offered the program (they remain "
                         "in the data; a cohort keeps them as comparison units unless it excludes them).",
    "counts": "Observed data, by arm: children, families, removals_within_12m_of_report (first removal on or after "
              "the report, within 365 days, before the 18th birthday), recurrences_within_12m_of_report (first "
              "substantiated report more than 14 days after the previous substantiated report and more than 14 days "
              "after the unit's report, within 365 days of it).",
}


# --------------------------------------------------------------------------- the public API
@dataclass
class SyntheticExtract:
    """A synthetic extract in memory: canonical tables, source layouts and the truth.

    Attributes
    ----------
    children, episodes, reports, participation, families : DataFrame
        The canonical tables (schema dtypes: ids ``string``, dates ``datetime64[ns]``, flags
        ``boolean``).
    afcars : DataFrame
        Every AFCARS record (NDACAN names, 1/2 flags, dates as datetime), with ``_file`` naming
        the file it belongs to (``FC2016A``, ...). The per-file style of
        :func:`afcars_style` is applied only when writing.
    ncands : DataFrame
        Every NCANDS child-file record, with ``_file`` (``CF2016``, ...).
    potential : DataFrame
        Both potential worlds (suffix ``_0`` without, ``_1`` with the program) of every unit
        that could be treated: in care, each main episode and each episode open at its
        family's enrolment; in prevention, each family's index report.
    truth : dict
        What ``truth.json`` holds.
    design : str
    seed : int
    extract_date : Timestamp

    Examples
    --------
    >>> syn = generate(500, seed=2)
    >>> treated = syn.potential[syn.potential["treated"]]
    >>> bool((treated["discharge_date_0"].isna() | (treated["discharge_date_0"] > treated["enrolled_date"])).all())
    True
    >>> sorted(syn.afcars["_file"].cat.categories)[:2]
    ['FC2010A', 'FC2010B']
    """

    children: pd.DataFrame
    episodes: pd.DataFrame
    reports: pd.DataFrame
    participation: pd.DataFrame
    families: pd.DataFrame
    afcars: pd.DataFrame
    ncands: pd.DataFrame
    potential: pd.DataFrame
    truth: dict[str, Any]
    design: str
    seed: int
    extract_date: pd.Timestamp

    def tables(self) -> dict[str, pd.DataFrame]:
        """The five canonical tables by name."""
        return {name: getattr(self, name) for name in schema.TABLE_ORDER}

    def to_extract(self) -> Any:
        """The canonical tables as a :class:`ppeval.extract.Extract` (no files involved)."""
        from .extract import Extract

        return Extract(self.tables(), self.extract_date)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(v)}" for k, v in self.tables().items())
        return f"SyntheticExtract(design={self.design!r}, seed={self.seed}, {counts}, afcars={len(self.afcars)}, ncands={len(self.ncands)})"


def _check_effects(effects: Mapping[str, float] | None) -> dict[str, float]:
    fx = dict(DEFAULT_EFFECTS)
    for key, value in (effects or {}).items():
        if key not in DEFAULT_EFFECTS:
            close = difflib.get_close_matches(key, list(DEFAULT_EFFECTS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(DEFAULT_EFFECTS)}"
            raise ValueError(f"unknown effect {key!r}{hint}")
        fx[key] = float(value)
    for key, value in fx.items():
        if key.endswith("_hr") and value <= 0:
            raise ValueError(f"effect {key} must be a positive hazard ratio, got {value}")
    if not 0 < fx["uptake"] < 1:
        raise ValueError(f"uptake must be between 0 and 1, got {fx['uptake']}")
    return fx


def generate(
    n_children: int = 4000,
    seed: int = 20240601,
    design: str = "in_care",
    extract_date: str = EXTRACT_DATE,
    effects: Mapping[str, float] | None = None,
    *,
    entry_from: str = ENTRY_FROM,
    entry_to: str = ENTRY_TO,
    ncands_birth_dates: bool = True,
) -> SyntheticExtract:
    """Simulate an agency extract with a known program effect.

    Parameters
    ----------
    n_children : int
        Children simulated (in care, siblings and children only ever reported). Children
        that appear in no file are left out of the tables, so the tables hold slightly fewer.
    seed : int
        Seed of the random generator; the same seed gives the same extract, byte for byte.
    design : {"in_care", "prevention"}
        Program enrolling families of children in care, or families after a report.
    extract_date : str
        The extract date: nothing after it is observed.
    effects : dict, optional
        Overrides of :data:`DEFAULT_EFFECTS` (hazard ratios after enrolment, dose slope,
        uptake among families offered the program).
    entry_from, entry_to : str
        Entry window of the analysis cohort used for the truth (and written to ``eval.toml``).
    ncands_birth_dates : bool
        Write ``ChBDate`` in the NCANDS files (default). False writes them as NCANDS child
        files are distributed, with the age at the report (``ChAge``) and no birth date:
        children known only from reports then have an age interval (``birth_date_min``,
        ``birth_date_max``, intersected over their reports) and no ``birth_date`` in the
        canonical children table too, which is what the ``ncands`` preset gives.

    Returns
    -------
    SyntheticExtract

    Examples
    --------
    >>> syn = generate(1000, seed=3)
    >>> syn.truth["true_effects"]["reunified_12m"]["risk_difference"] > 0
    True
    >>> bool(syn.episodes["child_id"].str.startswith("0").all())
    True
    """
    if design not in ("in_care", "prevention"):
        raise ValueError(f"design must be 'in_care' or 'prevention', got {design!r}")
    if int(n_children) < 1:
        raise ValueError(f"n_children must be at least 1, got {n_children}")
    fx = _check_effects(effects)
    extract = _day(extract_date)
    lo, hi = _day(entry_from), _day(entry_to)
    rng = np.random.default_rng(seed)
    sim = (_simulate_in_care if design == "in_care" else _simulate_prevention)(rng, int(n_children), fx, extract)
    ep = _finish_episodes(rng, sim.pop, sim.episodes, extract)
    parts = sim.report_parts + _episode_reports(rng, sim.pop, ep, sim.stays_home, extract)
    rep = _assemble_reports(rng, sim.pop, parts, extract)
    in_care = np.zeros(sim.pop.n, bool)
    in_care[ep["child"]] = True
    recnumbr, chid, child_id = _ids(sim.pop.n, in_care)
    tables = _canonical(sim, ep, rep, child_id, extract)
    afcars = _afcars_layout(sim.pop, ep, recnumbr, extract)
    ncands = _ncands_layout(sim.pop, rep, recnumbr, chid)
    if not ncands_birth_dates:
        ncands = ncands.drop(columns="ChBDate")
        tables["children"] = _ages_only(tables["children"], ncands)
    if design == "in_care":
        true_effects, counts = _truth_in_care(sim, ep, rep, extract, lo, hi)
        potential = _potential_in_care(sim, child_id)
        definitions = _DEFINITIONS_IN_CARE
    else:
        true_effects, counts = _truth_prevention(sim, ep, rep, extract, lo, hi, _PREVENTION_WINDOW)
        potential = _potential_prevention(sim)
        definitions = _DEFINITIONS_PREVENTION
    truth = {
        **({} if ncands_birth_dates else {"ncands_birth_dates": False}),
        "generator": "ppeval.synthetic",
        "generator_version": _GENERATOR_VERSION,
        "design": design,
        "seed": int(seed),
        "n_children_simulated": int(n_children),
        "n_families_simulated": int(sim.pop.n_fam),
        "extract_date": str(pd.Timestamp(extract_date).date()),
        "effects": {k: _round(v) for k, v in fx.items()},
        "uptake": {k: (_round(v) if isinstance(v, float) else v) for k, v in sim.uptake.items()},
        "cohort": {"entry_from": entry_from, "entry_to": entry_to, "episode": "first", "min_stay_days": 8,
                   "max_age_at_removal": 18, "enrollment_window_days": _PREVENTION_WINDOW if design == "prevention" else None},
        "true_effects": true_effects,
        "counts": counts,
        "tables": {name: int(len(df)) for name, df in tables.items()} | {"afcars_records": int(len(afcars)),
                                                                         "ncands_records": int(len(ncands))},
        "marginals": _marginals(sim, ep, tables, extract),
        "definitions": definitions,
    }
    return SyntheticExtract(
        children=tables["children"], episodes=tables["episodes"], reports=tables["reports"],
        participation=tables["participation"], families=tables["families"], afcars=afcars, ncands=ncands,
        potential=potential, truth=truth, design=design, seed=int(seed), extract_date=pd.Timestamp(extract_date),
    )


def _ages_only(children: pd.DataFrame, ncands: pd.DataFrame) -> pd.DataFrame:
    """Children known only from NCANDS records without ``ChBDate``: their birth dates become
    the interval their ages at the reports allow (intersected), as the ``ncands`` preset reads it."""
    from .load.ncands import age_interval

    own = ncands[ncands["AFCARSID"].isna()]
    age = own["ChAge"].to_numpy(dtype="int64")
    lo, hi = age_interval(own["RptDt"].to_numpy().astype("datetime64[D]"), age, np.zeros(len(age), bool))
    bounds = pd.DataFrame({"child_id": own["ChID"].to_numpy(), "lo": lo, "hi": hi}).groupby("child_id").agg(
        lo=("lo", "max"), hi=("hi", "min"))
    out = children.copy()
    ids = out["child_id"].astype(str)
    has = ids.isin(bounds.index).to_numpy()
    out["birth_date_min"] = pd.Series(ids.map(bounds["lo"]).to_numpy(), index=out.index).astype("datetime64[ns]")
    out["birth_date_max"] = pd.Series(ids.map(bounds["hi"]).to_numpy(), index=out.index).astype("datetime64[ns]")
    out.loc[has, "birth_date"] = pd.NaT
    pos = out.columns.get_loc("birth_date") + 1
    cols = [c for c in out.columns if c not in ("birth_date_min", "birth_date_max")]
    cols[pos:pos] = ["birth_date_min", "birth_date_max"]
    return out[cols]


_GENERATOR_VERSION = 2  # 2: enrolment at any removal; no prior episodes made to end at home
_PREVENTION_WINDOW = 60


def _potential_in_care(sim: _Sim, child_id: np.ndarray) -> pd.DataFrame:
    p = sim.potential
    reasons = np.array(schema.DISCHARGE_REASONS, dtype=object)
    out: dict[str, Any] = {
        "child_id": pd.array(child_id[p["child"]], dtype="string"),
        "family_id": pd.array([f"F{f + 1:07d}" for f in sim.pop.fam[p["child"]].tolist()], dtype="string"),
        "removal_date": _to_datetime(p["rem"]),
        "enrolled_date": _to_datetime(p["enrol"]),
        "treated": p["treated"].astype(bool),
        "hours": p["hours"],
    }
    for w in (0, 1):
        out[f"discharge_date_{w}"] = _to_datetime(p[f"dis_{w}"])
        out[f"discharge_reason_{w}"] = pd.array(np.where(p[f"reason_{w}"] >= 0, reasons[np.maximum(p[f"reason_{w}"], 0)], None),
                                                dtype="string")
        out[f"tpr_date_{w}"] = _to_datetime(p[f"tpr_{w}"])
        out[f"reentry_date_{w}"] = _to_datetime(p[f"reentry_{w}"])
        out[f"recurrence_date_{w}"] = _to_datetime(np.fmin(p[f"recurrence_{w}"], p[f"reentry_report_{w}"]))
    return pd.DataFrame(out)


def _potential_prevention(sim: _Sim) -> pd.DataFrame:
    p = sim.potential
    out: dict[str, Any] = {
        "family_id": pd.array([f"F{f + 1:07d}" for f in p["fam"].tolist()], dtype="string"),
        "report_date": _to_datetime(p["ref"]),
        "enrolled_date": _to_datetime(p["enrol"]),
        "treated": p["enrolled"].astype(bool),
        "removed_at_report": p["at_report"].astype(bool),
    }
    for w in (0, 1):
        out[f"removal_date_{w}"] = _to_datetime(p[f"rem_{w}"])
        out[f"recurrence_date_{w}"] = _to_datetime(p[f"rec_{w}"])
    return pd.DataFrame(out)


def _marginals(sim: _Sim, ep: dict[str, np.ndarray], tables: dict[str, pd.DataFrame], extract: int) -> dict[str, Any]:
    """A few descriptive numbers of the extract (for the README and the tests)."""
    pop = sim.pop
    out: dict[str, Any] = {"children": int(len(tables["children"])), "episodes": int(len(ep["child"]))}
    if not len(ep["child"]):
        return out
    first = _group_first(ep["child"])
    age = (ep["rem"] - pop.birth[ep["child"]]) / _YEAR
    out["infant_share_first_removals"] = _round(float((age[first] < 1).mean()))
    closed = ep["reason"] >= 0
    counts = np.bincount(ep["reason"][closed], minlength=len(schema.DISCHARGE_REASONS))
    out["discharge_reason_shares"] = {
        schema.DISCHARGE_REASONS[i]: _round(float(c / max(closed.sum(), 1))) for i, c in enumerate(counts) if c
    }
    # median length of stay of removals 2010-2017 (nearly all closed; open stays count as long)
    old = ep["rem"] < _day("2018-01-01")
    los = np.where(np.isnan(ep["dis"][old]), np.inf, ep["dis"][old] - ep["rem"][old])
    out["median_stay_days_2010_2017"] = _round(float(np.median(los))) if old.any() else None
    # re-entry within 12 months of a reunification (window observed), the CFSR-style rate
    nxt = np.full(len(ep["rem"]), np.nan)
    same = ep["child"][1:] == ep["child"][:-1]
    nxt[:-1] = np.where(same, ep["rem"][1:], np.nan)
    with np.errstate(invalid="ignore"):
        reun = (ep["reason"] == _R["reunification"]) & (ep["dis"] + 365 <= extract)
        out["reentry_12m_after_reunification"] = _round(float((nxt[reun] - ep["dis"][reun] <= 365).mean())) if reun.any() else None
    out["share_of_episodes_that_are_reentries"] = _round(float((~first).mean()))
    return out


# --------------------------------------------------------------------------- writing
def _to_arrow(df: pd.DataFrame) -> pa.Table:
    """Columns as Arrow arrays that the CSV writer prints as wanted (dates as YYYY-MM-DD)."""
    arrays, names = [], []
    for name in df.columns:
        s = df[name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            arr = pa.array(np.asarray(s.cat.categories, dtype=object)[s.cat.codes.to_numpy()], type=pa.string())
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            arr = pa.array(s.to_numpy().astype("datetime64[D]"), type=pa.date32(), from_pandas=True)
        elif isinstance(s.dtype, pd.BooleanDtype):
            arr = pa.array(s.to_numpy(dtype=object, na_value=None), type=pa.bool_())
        elif isinstance(s.dtype, pd.StringDtype) or s.dtype == object:
            arr = pa.array(s.to_numpy(dtype=object, na_value=None), type=pa.string(), from_pandas=True)
        else:
            arr = pa.array(s, from_pandas=True)
        arrays.append(arr)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _write_delimited(df: pd.DataFrame, path: Path, sep: str) -> None:
    """Write a table without quoting (no value contains the separator), header unquoted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write((sep.join(df.columns) + "\n").encode("utf-8"))
        if len(df):
            opts = pacsv.WriteOptions(include_header=False, delimiter=sep, quoting_style="none")
            pacsv.write_csv(_to_arrow(df), fh, opts)


def _write_afcars(afcars: pd.DataFrame, folder: Path) -> list[str]:
    names = []
    codes = afcars["_file"].cat.codes.to_numpy()
    bounds = np.searchsorted(codes, np.arange(len(afcars["_file"].cat.categories) + 1))
    body = afcars.drop(columns="_file")
    for i, stem in enumerate(afcars["_file"].cat.categories):
        part = body.iloc[bounds[i]:bounds[i + 1]].copy()
        style = afcars_style(int(stem[2:6]))
        if style["zero_one"]:
            for col in _AFCARS_FLAGS:
                part[col] = np.where(part[col].to_numpy() == 1, 1, 0).astype("int8")
            part["DISREASN"] = part["DISREASN"].fillna(0)
        if style["upper"]:
            part.columns = [c.upper() for c in part.columns]
        _write_delimited(part, folder / f"{stem}.tab", "\t")
        names.append(f"afcars/{stem}.tab")
    return names


def _write_ncands(ncands: pd.DataFrame, folder: Path) -> list[str]:
    names = []
    codes = ncands["_file"].cat.codes.to_numpy()
    order = np.argsort(codes, kind="stable")
    body = ncands.drop(columns="_file").iloc[order]
    codes = codes[order]
    bounds = np.searchsorted(codes, np.arange(len(ncands["_file"].cat.categories) + 1))
    for i, stem in enumerate(ncands["_file"].cat.categories):
        _write_delimited(body.iloc[bounds[i]:bounds[i + 1]], folder / f"{stem}.tab", "\t")
        names.append(f"ncands/{stem}.tab")
    return names


def _toml_list(items: list[str], indent: str = "  ") -> str:
    return "[\n" + "".join(f'{indent}"{x}",\n' for x in items) + "]"


def _config_text(syn: SyntheticExtract, afcars: list[str] | None, ncands: list[str] | None, canonical: bool) -> str:
    t = syn.truth
    design = syn.design
    lines = [
        f'title = "Parent partner program evaluation (synthetic {design} extract, seed {syn.seed})"',
        f"seed = {syn.seed}",
        "",
        "[data]",
        f'extract_date = "{t["extract_date"]}"',
    ]
    if canonical:
        lines += ["", "[data.children]", 'path = "canonical/children.csv"',
                  "", "[data.episodes]", 'path = "canonical/episodes.csv"',
                  "", "[data.reports]", 'path = "canonical/reports.csv"']
    else:
        lines += [f"afcars = {_toml_list(afcars or [])}", f"ncands = {_toml_list(ncands or [])}"]
    lines += ["", "[data.participation]", 'path = "participation.csv"', "", "[data.families]", 'path = "families.csv"', ""]
    lines += ["[cohort]", f'design = "{design}"', f'entry_from = "{t["cohort"]["entry_from"]}"',
              f'entry_to = "{t["cohort"]["entry_to"]}"', 'unit = "child"']
    if design == "prevention":
        lines += [f"enrollment_window_days = {_PREVENTION_WINDOW}",
                  "# synthetic data, for trying the design: its estimates are not yet validated, and every",
                  "# page of the report says so (a real extract's config must set this deliberately)",
                  "allow_unvalidated_design = true"]
    lines += ["", "[propensity]", 'model = "logistic"']
    if design == "in_care":
        lines += ['covariates = ["age_at_removal", "sex", "race_ethnicity", "removal_neglect", "removal_parent_drugs", '
                  '"removal_physical_abuse", "prior_removals", "entry_year", "county"]']
    # prior removals are rare and strongly tied to outcomes: matched exactly, like entry year
    exact = '["entry_year", "prior_removals"]' if design == "in_care" else '["entry_year"]'
    lines += ["", "[matching]", "ratio = 1", "caliper_sd = 0.2", "replace = false", f"exact = {exact}", "",
              "[outcomes]"]
    if design == "in_care":
        lines += ["reunification = { windows_months = [12, 24] }", "permanency = { windows_months = [12] }",
                  "tpr = { windows_months = [24] }", "reentry = { windows_months = [12] }",
                  "recurrence = { windows_months = [12] }"]
    else:
        lines += ["removal = { windows_months = [12] }", "recurrence = { windows_months = [12] }"]
    lines += ["", "[report]", "suppress_below = 11", 'program_name = "Parent Partner program"', ""]
    return "\n".join(lines)


def write_synthetic(
    out: str | Path,
    n_children: int = 4000,
    seed: int = 20240601,
    design: str = "in_care",
    extract_date: str = EXTRACT_DATE,
    effects: Mapping[str, float] | None = None,
    *,
    entry_from: str = ENTRY_FROM,
    entry_to: str = ENTRY_TO,
    canonical: bool = True,
    ncands_birth_dates: bool = True,
) -> Path:
    """Write a synthetic extract, its configs and ``truth.json`` into ``out``.

    Layout of ``out``::

        afcars/FC{FY}{A|B}.tab   legacy AFCARS foster-care files, one per semi-annual period
        ncands/CF{FY}.tab        NCANDS child files, one per fiscal year
        participation.csv        the program roster (agency file)
        families.csv             child -> family crosswalk (agency file)
        canonical/*.csv          the five canonical tables (when ``canonical``)
        eval.toml                config reading the AFCARS/NCANDS files through the presets
        eval_canonical.toml      config reading canonical/*.csv
        truth.json               the effects used and the true effects on the treated

    Existing ``afcars/``, ``ncands/`` and ``canonical/`` folders in ``out`` are replaced.

    Parameters
    ----------
    out : str or Path
        Output folder (created if needed).
    n_children, seed, design, extract_date, effects, entry_from, entry_to
        As for :func:`generate`.
    canonical : bool
        Also write ``canonical/`` and ``eval_canonical.toml`` (skip for big benchmark runs).
    ncands_birth_dates : bool
        As for :func:`generate`: False writes the NCANDS files with ``ChAge`` and no ``ChBDate``.

    Returns
    -------
    Path
        The output folder.

    Examples
    --------
    >>> import tempfile
    >>> folder = write_synthetic(tempfile.mkdtemp(), n_children=300, seed=1)
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['afcars', 'canonical', 'eval.toml', 'eval_canonical.toml', 'families.csv', 'ncands',
     'participation.csv', 'truth.json']
    """
    syn = generate(n_children, seed, design, extract_date, effects, entry_from=entry_from, entry_to=entry_to,
                   ncands_birth_dates=ncands_birth_dates)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("afcars", "ncands", "canonical"):
        if (folder / sub).exists():
            shutil.rmtree(folder / sub)
    afcars = _write_afcars(syn.afcars, folder / "afcars")
    ncands = _write_ncands(syn.ncands, folder / "ncands")
    _write_delimited(syn.participation, folder / "participation.csv", ",")
    _write_delimited(syn.families, folder / "families.csv", ",")
    if canonical:
        for name, df in syn.tables().items():
            _write_delimited(df, folder / "canonical" / f"{name}.csv", ",")
        (folder / "eval_canonical.toml").write_text(_config_text(syn, None, None, canonical=True), encoding="utf-8")
    (folder / "eval.toml").write_text(_config_text(syn, afcars, ncands, canonical=False), encoding="utf-8")
    (folder / "truth.json").write_text(json.dumps(syn.truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder
