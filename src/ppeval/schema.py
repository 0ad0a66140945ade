"""The canonical data model: one data dictionary used by loading, validation and the docs.

Every source (CSV, Parquet, SQL, the AFCARS and NCANDS presets) is translated into five
canonical tables. Dates are ``datetime64[ns]`` at day precision, identifiers are strings,
flags are nullable booleans and coded columns hold the canonical code strings listed here.

Examples
--------
>>> from ppeval import schema
>>> schema.TABLES["episodes"].required
('child_id', 'removal_date')
>>> "reunification" in schema.DISCHARGE_REASONS
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

#: Canonical discharge reasons (AFCARS DISREASN 1-8 plus "other").
DISCHARGE_REASONS: tuple[str, ...] = (
    "reunification",
    "relative",
    "adoption",
    "emancipation",
    "guardianship",
    "transfer",
    "runaway",
    "death",
    "other",
)

#: CFSR permanency: reunification, living with other relatives, guardianship or adoption.
PERMANENCY_REASONS: frozenset[str] = frozenset({"reunification", "relative", "adoption", "guardianship"})

#: Removal reasons: canonical name -> legacy AFCARS element name (E26-E40).
REMOVAL_REASONS: dict[str, str] = {
    "physical_abuse": "PhyAbuse",
    "sexual_abuse": "SexAbuse",
    "neglect": "Neglect",
    "parent_alcohol": "AAParent",
    "parent_drugs": "DAParent",
    "child_alcohol": "AAChild",
    "child_drugs": "DAChild",
    "child_disability": "ChilDis",
    "child_behavior": "ChBehPrb",
    "parent_death": "PrtsDied",
    "parent_incarceration": "PrtsJail",
    "caretaker_unable_to_cope": "NoCope",
    "abandonment": "Abandmnt",
    "relinquishment": "Relinqsh",
    "inadequate_housing": "Housing",
}

#: Placement settings (AFCARS CurPlSet 1-8).
PLACEMENT_SETTINGS: tuple[str, ...] = (
    "pre_adoptive_home",
    "relative_foster_home",
    "nonrelative_foster_home",
    "group_home",
    "institution",
    "supervised_independent_living",
    "runaway",
    "trial_home_visit",
)

SEX_CODES: tuple[str, ...] = ("female", "male", "unknown")

#: Race/ethnicity categories used by ppeval (derived from AFCARS race flags and HisOrgin
#: the way NDACAN derives RaceEthn: Hispanic of any race first, then single races, then
#: two or more races).
RACE_ETHNICITY_CODES: tuple[str, ...] = (
    "white",
    "black",
    "american_indian_alaska_native",
    "asian",
    "native_hawaiian_pacific_islander",
    "hispanic",
    "multiracial",
    "unknown",
)

PARENT_ROLES: tuple[str, ...] = ("mother", "father", "other")


@dataclass(frozen=True)
class Column:
    """One column of a canonical table.

    ``kind`` is one of ``id``, ``date``, ``bool``, ``code``, ``int``, ``float``, ``str``.
    ``codes`` lists the allowed values of a ``code`` column.
    """

    name: str
    kind: str
    required: bool = False
    codes: tuple[str, ...] | None = None
    description: str = ""
    identifying: bool = False

    @property
    def dtype(self) -> str:
        return {
            "id": "string",
            "date": "datetime64[ns]",
            "bool": "boolean",
            "code": "string",
            "int": "Int64",
            "float": "float64",
            "str": "string",
        }[self.kind]


@dataclass(frozen=True)
class Table:
    """A canonical table: its columns, its key and the tables its ids must exist in."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    description: str = ""
    #: column -> (table, column) that must contain each non-missing value
    links: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        if name.startswith("removal_") and self.name == "episodes":
            return Column(name, "bool", description="removal reason flag")
        return None


_removal_columns = tuple(
    Column(f"removal_{reason}", "bool", description=f"removal reason: {reason.replace('_', ' ')} (AFCARS {element})")
    for reason, element in REMOVAL_REASONS.items()
)

TABLES: dict[str, Table] = {
    "children": Table(
        "children",
        (
            Column("child_id", "id", True, description="child identifier (AFCARS RecNumbr)", identifying=True),
            Column("birth_date", "date", True, description="date of birth (may be missing when the age interval is known)",
                   identifying=True),
            Column("birth_date_min", "date", description="earliest possible date of birth, when only an age is known "
                   "(e.g. NCANDS ChAge: age a on the report date d gives birth in (d - (a+1) years, d - a years]; "
                   "stored inclusive: d - (a+1) years + 1 day)", identifying=True),
            Column("birth_date_max", "date", description="latest possible date of birth, when only an age is known "
                   "(d - a years, inclusive)", identifying=True),
            Column("family_id", "id", description="family identifier", identifying=True),
            Column("sex", "code", codes=SEX_CODES, description="sex"),
            Column("race_ethnicity", "code", codes=RACE_ETHNICITY_CODES, description="race/ethnicity"),
            Column("hispanic", "bool", description="Hispanic or Latino origin"),
            Column("county", "str", description="county (FIPS code)"),
        ),
        key=("child_id",),
        description="one row per child",
    ),
    "episodes": Table(
        "episodes",
        (
            Column("child_id", "id", True, description="child identifier", identifying=True),
            Column("removal_date", "date", True, description="date of removal (start of the episode)"),
            Column("discharge_date", "date", description="date of discharge; missing = in care at the extract date"),
            Column("discharge_reason", "code", codes=DISCHARGE_REASONS, description="reason for discharge"),
            *_removal_columns,
            Column("placement_setting", "code", codes=PLACEMENT_SETTINGS, description="latest placement setting"),
            Column("placements", "int", description="number of placements in the episode"),
            Column("county", "str", description="county of the episode (FIPS code)"),
            Column("tpr_mother_date", "date", description="termination of the mother's parental rights"),
            Column("tpr_father_date", "date", description="termination of the father's parental rights"),
        ),
        key=("child_id", "removal_date"),
        description="one row per removal episode",
        links={"child_id": ("children", "child_id")},
    ),
    "reports": Table(
        "reports",
        (
            Column("child_id", "id", True, description="child identifier", identifying=True),
            Column("report_date", "date", True, description="date the report was received"),
            Column("substantiated", "bool", True, description="substantiated or indicated (CFSR victim)"),
            Column("report_id", "id", description="report identifier", identifying=True),
            Column("family_id", "id", description="family identifier", identifying=True),
            Column("maltreatment_types", "str", description="';'-separated maltreatment types"),
        ),
        key=("report_id", "child_id"),
        description="one row per child per maltreatment report",
    ),
    "participation": Table(
        "participation",
        (
            Column("family_id", "id", description="family identifier (or child_id)", identifying=True),
            Column("child_id", "id", description="child identifier (or family_id)", identifying=True),
            Column("enrolled_date", "date", True, description="date the parent enrolled in the program"),
            Column("exit_date", "date", description="date the parent left the program"),
            Column("hours", "float", description="hours of mentoring received"),
            Column("contacts", "int", description="number of contacts with the parent partner"),
            Column("parent_role", "code", codes=PARENT_ROLES, description="role of the enrolled parent"),
            Column("component", "str", description="program component"),
        ),
        key=(),
        description="one row per enrolment of a parent in the program",
    ),
    "families": Table(
        "families",
        (
            Column("child_id", "id", True, description="child identifier", identifying=True),
            Column("family_id", "id", True, description="family identifier", identifying=True),
        ),
        key=("child_id",),
        description="crosswalk from child to family",
    ),
}

TABLE_ORDER: tuple[str, ...] = ("children", "families", "episodes", "reports", "participation")

#: Source bookkeeping columns carried by every loaded table so validation can name file and line.
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"


def identifying_columns() -> set[str]:
    """Names of the canonical columns that identify a person (never published)."""
    return {c.name for t in TABLES.values() for c in t.columns if c.identifying}


def empty_table(name: str) -> pd.DataFrame:
    """An empty canonical table with the declared dtypes (required columns only)."""
    table = TABLES[name]
    return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in table.columns if c.required})


def data_dictionary() -> pd.DataFrame:
    """The data dictionary as a DataFrame (table, column, type, required, codes, description).

    Examples
    --------
    >>> dd = data_dictionary()
    >>> set(dd["table"]) == set(TABLES)
    True
    """
    rows = []
    for t in TABLES.values():
        for c in t.columns:
            rows.append(
                {
                    "table": t.name,
                    "column": c.name,
                    "type": c.kind,
                    "required": c.required,
                    "codes": ", ".join(c.codes) if c.codes else "",
                    "description": c.description,
                }
            )
    return pd.DataFrame(rows)


def coerce_table(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Cast the known columns of an already-clean canonical table to their declared dtypes.

    Used by code that builds canonical tables itself (the synthetic generator, the presets);
    source files go through :mod:`ppeval.load`, which reports what cannot be parsed.
    """
    table = TABLES[name]
    out = df.copy()
    for col in out.columns:
        spec = table.column(col)
        if spec is None:
            continue
        if spec.kind == "date":
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
        else:
            out[col] = out[col].astype(spec.dtype)
    return out
