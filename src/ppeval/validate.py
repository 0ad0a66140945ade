"""Cross-row and cross-table checks of an :class:`~ppeval.extract.Extract`.

:func:`validate_extract` starts from the problems the loader found while reading
(``ext.load_problems``: unparseable cells, unknown codes, empty files, ...) and adds every
problem that needs more than one cell to see: dates in the wrong order, dates after the
extract date, duplicate keys, ids that do not link, overlapping episodes, enrolments that
cannot count as treatment. Each :class:`~ppeval.problems.Problem` names the file
(``_source_file``), the row (``_source_row``: the line in the source file, header = line 1),
the column (the source's own name when a column map or preset says what it is, otherwise
the canonical name), the offending value and what was expected.

Values of identifying columns (child, family and report ids, birth dates) are never put in
a problem: ``value`` is ``None`` and the message does not repeat them; the file and row
locate the record.

Checks and severities
---------------------
An *error* means the evaluation would be wrong or cannot run (``ppeval validate`` exits 1);
a *warning* means a record will be left out or looks implausible but the data can be used.

Every table:

- required column absent from a non-empty table (error; the loader normally reports it);
- children: a missing ``birth_date`` is no problem when the row has an age interval
  (``birth_date_min`` and ``birth_date_max``, e.g. from NCANDS ``ChAge``); without either the
  child's age cannot be told (error, at the source's file, row and column: ``ChBDate`` or
  ``DOB`` for the presets);
- required value missing, or a code outside the canonical list, in cells the loader has not
  already reported (error);
- duplicate key per ``schema.TABLES[t].key``: every repeat is named, and its message gives
  the row of the first occurrence (error);
- date after the extract date (error; a participation ``exit_date``: warning, since
  rosters often carry planned exits).

Episodes:

- discharge before removal; removal before the child's birth (for a birth known as an
  interval: before its earliest possible date); child not in the children table (errors);
- removal before the discharge of an earlier episode of the same child (overlap), and an
  open episode (no discharge date) followed by a later removal (errors);
- age at removal of ``cohort.max_age_at_removal`` (18) or more: excluded from cohorts later
  (warning); birth more than 25 years before removal: implausible, check the birth date
  (warning, instead of the age-18 one);
- TPR date before the removal (warning: it may belong to an earlier episode);
- discharge date without a reason, or a reason without a date (warning).

Reports: child not in the children table (warning: reports of children never in care are
normal when the children table comes from foster-care records; such a report is unused).

Participation:

- neither ``child_id`` nor ``family_id``; a child not in the children table; a family in
  neither the families crosswalk nor ``children.family_id``; exit before enrolment; negative
  hours or contacts (errors). Link failures are errors because an enrolment that cannot be
  attached leaves a treated child in the comparison pool, biasing estimates towards no
  effect;
- ``in_care`` design (``cohort.design``, the default): enrolment outside every episode of
  the family's children: it will not count as treated (warning);
- ``prevention`` design: enrolment before the first report of the family's children, or no
  report at all (warning).

Children: a ``family_id`` that disagrees with the families crosswalk (warning).

Rows the configured analysis never uses: the units are children with a removal (``in_care``)
or a report (``prevention``) in the entry window (``cohort.entry_from``/``entry_to``); an
error in a children, episodes or reports row of any other child cannot make the analysis
wrong, so it is reported as a warning saying so (e.g. a child known only from reports with
no birth date and no age, in the in-care design) and counted in
``ValidationReport.outside_rows``, which the sample flow and the methods text repeat.

Follow-on problems are not reported: a cell the loader already reported is not reported
again as missing, and a table whose file could not be read at all (missing, empty, wrong
delimiter, required column absent) is not used to call every row of another table
unlinked. Column names are the source's when known: ``df.attrs["source_columns"]`` set by
the loader, the config's ``columns`` map, or the NDACAN element names for rows read through
the ``afcars``/``ncands`` presets (:data:`PRESET_NAMES`).

Every check is vectorised (no Python loop over rows): ids are hashed once into integer codes
shared by all tables, after which every check works on integers and dates. Only the rows
found wrong become :class:`Problem` objects. Problems are sorted by (file, row, column);
file-level problems (row ``None``) come first in their file.

Examples
--------
>>> import pandas as pd
>>> from ppeval.extract import Extract
>>> children = pd.DataFrame({"child_id": ["a"], "birth_date": pd.to_datetime(["2015-01-01"]),
...                          "_source_file": "children.csv", "_source_row": [2]})
>>> episodes = pd.DataFrame({"child_id": ["a"], "removal_date": pd.to_datetime(["2020-03-01"]),
...                          "discharge_date": pd.to_datetime(["2020-01-01"]),
...                          "_source_file": "episodes.csv", "_source_row": [2]})
>>> rep = validate_extract(Extract({"children": children, "episodes": episodes}, "2023-12-31"))
>>> [(p.severity, p.file, p.row, p.column) for p in rep.errors]
[('error', 'episodes.csv', 2, 'discharge_date')]
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import schema
from .load.ids import explain_mismatch, fix_hint
from .problems import ERROR, WARNING, Problem, ValidationReport

if TYPE_CHECKING:
    from .extract import Extract

__all__ = ["problem_counts", "problem_kind", "summary_lines", "triage_lines", "validate_extract"]

#: Births more than this many years before a removal are taken to be data-entry errors.
IMPLAUSIBLE_AGE_YEARS = 25

#: Severity of a date after the extract date, per (table, column). Anything that happened
#: after the data were pulled is impossible; planned exit dates are common in rosters.
_AFTER_EXTRACT: dict[tuple[str, str], str] = {
    ("episodes", "removal_date"): ERROR,
    ("episodes", "discharge_date"): ERROR,
    ("episodes", "tpr_mother_date"): ERROR,
    ("episodes", "tpr_father_date"): ERROR,
    ("reports", "report_date"): ERROR,
    ("participation", "enrolled_date"): ERROR,
    ("participation", "exit_date"): WARNING,
}

# A date far beyond any extract, standing in for "still open" so that open episodes
# compare as lasting for ever without special cases.
_OPEN = pd.Timestamp("2262-01-01")


def _fmt_dates(values: pd.Series | np.ndarray) -> list[str | None]:
    """ISO dates for the (few) flagged rows; ``None`` for missing."""
    out = pd.Series(values).dt.strftime("%Y-%m-%d")
    return [None if pd.isna(v) else v for v in out]


def _as_objects(s: pd.Series) -> np.ndarray:
    """Ids as a numpy object array; numbers become strings so ``1`` matches ``"1"``."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype("string")
    return s.to_numpy(dtype=object)


def _factorize(columns: list[pd.Series]) -> tuple[list[np.ndarray], int]:
    """Integer codes shared by several id columns (-1 = missing).

    Hashing strings is the dominant cost of validation; doing it once per id and then
    working on integers keeps a million-child extract to a few seconds.
    """
    if not columns:
        return [], 0
    codes, uniques = pd.factorize(np.concatenate([_as_objects(s) for s in columns]))
    bounds = np.cumsum([0] + [len(s) for s in columns])
    parts = [codes[a:b].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return parts, len(uniques)


#: Rows a check lists one by one (per call); further ones are counted in one problem.
MAX_LISTED_PER_CHECK = 1000


class _Table:
    """One canonical table with its provenance arrays and cached, normalised columns."""

    def __init__(
        self, name: str, df: pd.DataFrame, source_names: Mapping[str | None, Mapping[str, str]]
    ):
        self.name = name
        self.df = df
        self.n = len(df)
        self.source_names = source_names
        # file names are looked up only for flagged rows: converting a million-row column
        # up front would cost more than most checks
        self._file_col = df[schema.SOURCE_FILE] if schema.SOURCE_FILE in df.columns else None
        self._file_names: list[str] | None = None
        if schema.SOURCE_ROW in df.columns:
            rows = pd.to_numeric(df[schema.SOURCE_ROW], errors="coerce")
            self.rows = rows.fillna(-1).astype(np.int64).to_numpy()
        else:
            # built in memory: number the rows as if written to a CSV with a header line
            self.rows = np.arange(self.n, dtype=np.int64) + 2
        self._dates: dict[str, pd.Series] = {}
        #: integer codes of id columns (filled by the context; -1 = missing)
        self.codes: dict[str, np.ndarray] = {}
        #: rows the configured analysis never uses (their errors become warnings), or None
        self.outside: np.ndarray | None = None
        self.outside_note = ""
        #: (file, row) of the rows whose errors were made warnings
        self.outside_hits: set[tuple[str, int]] = set()

    def has(self, col: str) -> bool:
        return col in self.df.columns

    def files(self, positions: np.ndarray) -> np.ndarray:
        """Source file of the rows at ``positions`` (the table name when unknown)."""
        pos = np.asarray(positions, dtype=np.int64)
        if self._file_col is None:
            return np.full(pos.size, self.name, dtype=object)
        f = self._file_col.iloc[pos].astype(object).to_numpy()
        return np.where(pd.isna(f), self.name, f)

    def file_names(self) -> list[str]:
        """Every distinct source file of the table (computed once: it hashes every row)."""
        if self._file_names is None:
            if self._file_col is None:
                self._file_names = [self.name] if self.n else []
            else:
                uniq = pd.unique(self._file_col)
                self._file_names = [self.name if pd.isna(f) else str(f) for f in uniq]
        return self._file_names

    def label(self, col: str, file: object = None) -> str:
        """The column name to show: the source's name when known, else the canonical one."""
        if file is not None:
            per_file = self.source_names.get(str(file))
            if per_file and col in per_file:
                return per_file[col]
        return self.source_names.get(None, {}).get(col, col)

    def code(self, col: str) -> np.ndarray:
        """Integer codes of an id column (-1 = missing); all -1 when the column is absent."""
        if col not in self.codes:
            if self.has(col):
                self.codes[col] = _factorize([self.df[col]])[0][0]
            else:
                self.codes[col] = np.full(self.n, -1, dtype=np.int64)
        return self.codes[col]

    def dates(self, col: str) -> pd.Series:
        """A date column as ``datetime64[ns]`` with a RangeIndex (all missing if absent)."""
        if col not in self._dates:
            if not self.has(col):
                s = pd.Series(pd.NaT, index=range(self.n), dtype="datetime64[ns]")
            else:
                s = self.df[col]
                if not pd.api.types.is_datetime64_any_dtype(s.dtype):
                    # built in memory from strings; loaded tables are already dates
                    s = pd.to_datetime(s, errors="coerce", format="mixed")
                elif getattr(s.dt, "tz", None) is not None:
                    s = s.dt.tz_localize(None)
                s = s.reset_index(drop=True).astype("datetime64[ns]").dt.normalize()
            self._dates[col] = s
        return self._dates[col]

    def emit(
        self,
        positions: np.ndarray | Iterable[int],
        severity: str,
        column: str | None,
        expected: str | list[str],
        message: str | list[str],
        values: Iterable[str | None] | None = None,
    ) -> list[Problem]:
        """Problems for the rows at ``positions`` (only the flagged rows are looped over).

        At most :data:`MAX_LISTED_PER_CHECK` rows are listed one by one; the rest are
        counted in one problem per file (a swapped header must not print a line per row
        of a statewide file).
        """
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size == 0:
            return []
        if severity == ERROR and self.outside is not None and self.outside[pos].any():
            # a row the configured analysis never uses cannot make it wrong: a warning, so
            # that it does not block the run (and it is counted in the sample flow)
            out_ = self.outside[pos]
            k = pos.size
            vals = [None] * k if values is None else list(values)
            exps = [expected] * k if isinstance(expected, str) else list(expected)
            msgs = [message] * k if isinstance(message, str) else list(message)
            ins, outs = np.flatnonzero(~out_), np.flatnonzero(out_)
            for f, r in zip(self.files(pos[outs]), self.rows[pos[outs]], strict=True):
                self.outside_hits.add((str(f), int(r)))
            return self.emit(pos[ins], ERROR, column, [exps[i] for i in ins], [msgs[i] for i in ins],
                             [vals[i] for i in ins]) + self.emit(
                pos[outs], WARNING, column, [exps[i] for i in outs], [f"{msgs[i]}; {self.outside_note}" for i in outs],
                [vals[i] for i in outs])
        k = pos.size
        vals = [None] * k if values is None else list(values)
        exps = [expected] * k if isinstance(expected, str) else list(expected)
        msgs = [message] * k if isinstance(message, str) else list(message)
        rest = np.zeros(0, dtype=np.int64)
        if k > MAX_LISTED_PER_CHECK:
            order = np.argsort(pos, kind="stable")
            keep, rest = order[:MAX_LISTED_PER_CHECK], pos[order[MAX_LISTED_PER_CHECK:]]
            pos = pos[keep]
            vals, exps, msgs = ([x[i] for i in keep] for x in (vals, exps, msgs))
        rows = [None if r < 0 else int(r) for r in self.rows[pos]]
        files = self.files(pos)
        labels = {f: self.label(column, f) if column else None for f in pd.unique(files)}
        out = [
            Problem(severity, str(f), r, labels[f], v, e, m, self.name)
            for f, r, v, e, m in zip(files, rows, vals, exps, msgs, strict=True)
        ]
        if rest.size:
            what = msgs[0].split(";")[0].split(" (")[0]
            rest_files = self.files(rest)
            for f in pd.unique(rest_files):
                r = self.rows[rest[rest_files == f]]
                out.append(
                    Problem(
                        severity, str(f), None, self.label(column, f) if column else None, None, exps[0],
                        f"{what}: {r.size} more row(s) like the ones above (rows {int(r.min())}-{int(r.max())}); "
                        f"only the first {MAX_LISTED_PER_CHECK} of this check are listed",
                        self.name,
                    )
                )
        return out

    def emit_file(
        self, severity: str, column: str | None, expected: str, message: str
    ) -> list[Problem]:
        """One file-level problem (row ``None``) per file the table was read from."""
        return [
            Problem(
                severity,
                str(f),
                None,
                self.label(column, f) if column else None,
                None,
                expected,
                message,
                self.name,
            )
            for f in self.file_names()
        ]

    def where(self, positions: np.ndarray) -> list[str]:
        """``"file row N"`` for rows of this table, used to point at a second row in a message."""
        out = []
        pos = np.asarray(positions, dtype=np.int64)
        for row, f in zip(self.rows[pos], self.files(pos), strict=True):
            file = os.path.basename(str(f))
            out.append(f"{file} row {row}" if row >= 0 else file)
        return out


class _Context:
    """Everything the checks share: tables, id codes, extract date, design, load coverage."""

    def __init__(self, ext: Extract):
        self.extract_date = pd.Timestamp(ext.extract_date).normalize()
        cfg: Mapping[str, Any] = ext.config or {}
        cohort = cfg.get("cohort", {}) or {}
        self.design: str = cohort.get("design") or "in_care"
        self.max_age: float = float(cohort.get("max_age_at_removal") or 18)
        self.t: dict[str, _Table] = {
            name: _Table(name, ext.tables[name], _source_names(ext, name))
            for name in schema.TABLE_ORDER
        }
        # one code space per kind of id, shared by every table that carries it
        self.n_child = self._share("child_id")
        self.n_family = self._share("family_id")
        # Cells the loader already reported (unparseable date, unknown code, ...): the
        # validator must not report the same cell again as "missing" or "unknown".
        self.covered: set[tuple[str, int, str]] = set()
        # (file, column) the loader reported as a whole: a column-level problem with no row,
        # e.g. "N more unparseable cells in this column" beyond the listed ones
        self.covered_columns: set[tuple[str, str]] = set()
        self.files_with_file_problems: set[str] = set()
        # Tables with a file the loader could not read at all (missing, empty, wrong
        # delimiter, missing required column: an error naming no column, and no row of that
        # file in the table). Cross-table checks that need them are skipped: every row would
        # otherwise be reported again as unlinked, drowning the one real problem.
        self.failed: set[str] = set()
        for p in ext.load_problems:
            f = os.path.basename(str(p.file))
            if p.row is None:
                self.files_with_file_problems.add(f)
                if p.column:
                    self.covered_columns.add((f, str(p.column).lower()))
            elif p.column:
                self.covered.add((f, int(p.row), str(p.column).lower()))
            if p.severity == ERROR and p.column is None and p.table in self.t:
                loaded = {os.path.basename(x) for x in self.t[str(p.table)].file_names()}
                if f not in loaded:
                    self.failed.add(p.table)
                    self.files_with_file_problems.add(f)

        # a table built without one of its required columns cannot be linked either
        for name, t in self.t.items():
            if t.n and not all(t.has(c) for c in schema.TABLES[name].required):
                self.failed.add(name)
        self._mark_outside(cohort)

    def _mark_outside(self, cohort: Mapping[str, Any]) -> None:
        """Mark the children, episodes and reports rows the configured analysis never uses.

        The units are children with a removal (in care) or a report (prevention) in the
        entry window; rows of any other child never enter the cohort (a record without a
        date counts as in the window: it cannot be ruled out). Nothing is marked when the
        table that defines the units is empty or could not be read.
        """
        anchor_table, anchor_col = ("episodes", "removal_date") if self.design == "in_care" else ("reports", "report_date")
        a = self.t[anchor_table]
        if a.n == 0 or not self.usable(anchor_table) or not a.has("child_id"):
            return
        d = a.dates(anchor_col)
        lo, hi = cohort.get("entry_from"), cohort.get("entry_to")
        inside = pd.Series(True, index=d.index)
        if lo:
            inside &= ~(d < pd.Timestamp(lo))
        if hi:
            inside &= ~(d > pd.Timestamp(hi))
        codes = a.code("child_id")
        used = np.zeros(self.n_child, dtype=bool)
        used[codes[(codes >= 0) & inside.to_numpy()]] = True
        unit = "removal" if self.design == "in_care" else "report"
        note = (f"not used by the {self.design} analysis (the child has no {unit} in the entry window), "
                "so a warning, not an error")
        for name in ("children", "episodes", "reports"):
            t = self.t[name]
            if t.n and t.has("child_id"):
                c = t.code("child_id")
                t.outside = (c >= 0) & ~used[np.maximum(c, 0)] if used.size else np.zeros(t.n, dtype=bool)
                t.outside_note = note

    def usable(self, *tables: str) -> bool:
        """Whether every one of ``tables`` was read without a file-level error."""
        return not self.failed.intersection(tables)

    def _share(self, col: str) -> int:
        tables = [t for t in self.t.values() if t.has(col)]
        codes, n = _factorize([t.df[col] for t in tables])
        for t, c in zip(tables, codes, strict=True):
            t.codes[col] = c
        return n

    def uncovered(self, t: _Table, positions: np.ndarray, column: str) -> np.ndarray:
        """Drop positions whose cell the loader already reported."""
        pos = np.asarray(positions, dtype=np.int64)
        if not (self.covered or self.covered_columns) or pos.size == 0:
            return pos
        keep = []
        for f, r in zip(t.files(pos), t.rows[pos], strict=True):
            base = os.path.basename(str(f))
            names = (column.lower(), t.label(column, f).lower())
            keep.append(
                not any(
                    (base, int(r), n) in self.covered or (base, n) in self.covered_columns
                    for n in names
                )
            )
        return pos[np.asarray(keep, dtype=bool)]


#: Canonical column -> NDACAN element name, per table, for rows read through a preset (the
#: loader matches element names case-insensitively; problems show the documented spelling).
PRESET_NAMES: dict[str, dict[str, dict[str, str]]] = {
    "afcars": {
        "children": {
            "child_id": "RecNumbr",
            "birth_date": "DOB",
            "sex": "Sex",
            "hispanic": "HisOrgin",
            "county": "FIPSCode",
        },
        "episodes": {
            "child_id": "RecNumbr",
            "removal_date": "LatRemDt",
            "discharge_date": "DoDFCDt",
            "discharge_reason": "DISREASN",
            "placement_setting": "CurPlSet",
            "placements": "NumPlep",
            "county": "FIPSCode",
            "tpr_mother_date": "TPRMomDt",
            "tpr_father_date": "TPRDadDt",
            **{f"removal_{reason}": element for reason, element in schema.REMOVAL_REASONS.items()},
        },
    },
    "ncands": {
        "children": {"sex": "ChSex", "birth_date": "ChBDate", "birth_date_min": "ChAge", "birth_date_max": "ChAge"},
        "reports": {"report_id": "RptID", "child_id": "ChID", "report_date": "RptDt"},
    },
}


def _source_names(ext: Extract, table: str) -> dict[str | None, dict[str, str]]:
    """Canonical -> source column names for one table, overall (key ``None``) or per file.

    In order of preference: ``df.attrs["source_columns"]`` set by the loader, either
    ``{canonical: source}`` or per file ``{file: {canonical: source}}``; the config's
    ``[data.<table>] columns = {canonical = "Source"}`` map; for files read through the
    ``afcars``/``ncands`` presets, the NDACAN element names (:data:`PRESET_NAMES`, with the
    preset's own ``columns`` overrides). Canonical names are shown for anything else.
    """
    attrs = getattr(ext.tables[table], "attrs", {}) or {}
    names = attrs.get("source_columns")
    if isinstance(names, Mapping) and names:
        if all(isinstance(v, Mapping) for v in names.values()):
            return {str(f): {str(k): str(v) for k, v in m.items()} for f, m in names.items()}
        return {None: {str(k): str(v) for k, v in names.items() if isinstance(v, str)}}
    cfg: Mapping[str, Any] = ext.config or {}
    data = cfg.get("data", {}) or {}
    out: dict[str | None, dict[str, str]] = {}
    src = data.get(table) or {}
    cols = src.get("columns") if isinstance(src, Mapping) else None
    if isinstance(cols, Mapping):
        out[None] = {str(k): str(v) for k, v in cols.items() if isinstance(v, str)}
    for preset, tables in PRESET_NAMES.items():
        spec = data.get(preset)
        if table not in tables or not spec:
            continue
        if not isinstance(spec, Mapping):
            spec = {"paths": spec}
        overrides = {str(k).lower(): str(v) for k, v in (spec.get("columns") or {}).items()}
        mapping = {c: overrides.get(e.lower(), e) for c, e in tables[table].items()}
        for path in spec.get("paths") or ():
            out[str(path)] = mapping
    return out


class _Lookup:
    """Position of the first row of a table holding each id code (-1 = none)."""

    def __init__(self, codes: np.ndarray, n_codes: int):
        self.first = np.full(n_codes, -1, dtype=np.int64)
        valid = np.flatnonzero(codes >= 0)
        uniq, idx = np.unique(codes[valid], return_index=True)
        self.first[uniq] = valid[idx]

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return (
            np.where(codes >= 0, self.first[np.maximum(codes, 0)], -1)
            if self.first.size
            else np.full(len(codes), -1, dtype=np.int64)
        )


# ---------------------------------------------------------------------------------------
# single-table checks


def _check_required(ctx: _Context) -> list[Problem]:
    out: list[Problem] = []
    for name, t in ctx.t.items():
        if t.n == 0:
            continue
        for col in schema.TABLES[name].required:
            if not t.has(col):
                # The loader reports a missing column under the source's own name; only a
                # table built in memory (or a loader that said nothing) gets it from here.
                if not any(
                    os.path.basename(str(f)) in ctx.files_with_file_problems for f in t.file_names()
                ):
                    out += t.emit_file(
                        ERROR,
                        col,
                        f"a {col!r} column",
                        f"required column {col!r} is missing from the {name} table",
                    )
                continue
            missing = t.df[col].isna().to_numpy()
            if name == "children" and col == "birth_date":
                # an age at a report (an interval for the birth) does wherever only the age
                # matters: the birth date is required only where there is neither
                missing &= ~(t.dates("birth_date_min").notna() & t.dates("birth_date_max").notna()).to_numpy()
                miss = ctx.uncovered(t, np.flatnonzero(missing), col)
                out += t.emit(miss, ERROR, col, "a birth date, or an age at a report (NCANDS ChAge), for every child "
                              "the analysis uses", "missing birth date and no age: the child's age cannot be told")
                continue
            miss = ctx.uncovered(t, np.flatnonzero(missing), col)
            out += t.emit(miss, ERROR, col, f"a {col} on every {name} row", f"missing {col}")
        if name == "participation":
            if not t.has("child_id") and not t.has("family_id"):
                out += t.emit_file(
                    ERROR,
                    None,
                    "a child_id or a family_id column",
                    "the participation roster has neither child_id nor family_id",
                )
            else:
                none = np.flatnonzero((t.code("child_id") < 0) & (t.code("family_id") < 0))
                col = "family_id" if t.has("family_id") else "child_id"
                out += t.emit(
                    ctx.uncovered(t, none, col),
                    ERROR,
                    col,
                    "a child_id or a family_id",
                    "enrolment names neither a child nor a family",
                )
    return out


def _check_codes(ctx: _Context) -> list[Problem]:
    out: list[Problem] = []
    for name, t in ctx.t.items():
        for spec in schema.TABLES[name].columns:
            if spec.kind != "code" or not spec.codes or not t.has(spec.name):
                continue
            s = t.df[spec.name]
            bad = ctx.uncovered(
                t, np.flatnonzero((s.notna() & ~s.isin(spec.codes)).to_numpy()), spec.name
            )
            out += t.emit(
                bad,
                ERROR,
                spec.name,
                "one of " + ", ".join(spec.codes),
                f"unknown {spec.name} code",
                [str(v) for v in s.iloc[bad]],
            )
    return out


def _check_dates_parse(ctx: _Context) -> list[Problem]:
    """Date columns built in memory from strings that are not dates (loaded data never is)."""
    out: list[Problem] = []
    for name, t in ctx.t.items():
        for spec in schema.TABLES[name].columns:
            if spec.kind != "date" or not t.has(spec.name):
                continue
            raw = t.df[spec.name]
            if pd.api.types.is_datetime64_any_dtype(raw.dtype):
                continue
            bad = np.flatnonzero(raw.notna().to_numpy() & t.dates(spec.name).isna().to_numpy())
            bad = ctx.uncovered(t, bad, spec.name)
            # later checks see these cells as missing; they must not report them again
            for f, r in zip(t.files(bad), t.rows[bad], strict=True):
                ctx.covered.add((os.path.basename(str(f)), int(r), spec.name.lower()))
            vals = None if spec.identifying else [str(v) for v in raw.iloc[bad]]
            out += t.emit(
                bad, ERROR, spec.name, "a date (YYYY-MM-DD)", f"{spec.name} is not a date", vals
            )
    return out


def _check_after_extract(ctx: _Context) -> list[Problem]:
    out: list[Problem] = []
    ed = ctx.extract_date
    for (name, col), severity in _AFTER_EXTRACT.items():
        t = ctx.t[name]
        if not t.has(col):
            continue
        d = t.dates(col)
        bad = np.flatnonzero((d > ed).to_numpy())
        out += t.emit(
            bad,
            severity,
            col,
            f"a date on or before the extract date {ed.date()}",
            f"{col} is after the extract date",
            _fmt_dates(d.iloc[bad]),
        )
    return out


def _key_parts(t: _Table, key: list[str]) -> list[np.ndarray]:
    """Each key column as non-negative integers (-1 = missing): id codes, or days for dates."""
    parts = []
    for c in key:
        spec = schema.TABLES[t.name].column(c)
        if spec is not None and spec.kind == "date":
            d = t.dates(c).to_numpy()
            days = d.astype("datetime64[D]").astype(np.int64)
            ok = ~np.isnat(d)
            lo = days[ok].min() if ok.any() else 0
            parts.append(np.where(ok, days - lo, -1))
        else:
            parts.append(t.code(c))
    return parts


def _check_duplicates(ctx: _Context) -> list[Problem]:
    out: list[Problem] = []
    for name, t in ctx.t.items():
        key = list(schema.TABLES[name].key)
        if not key or t.n == 0 or not all(t.has(c) for c in key):
            continue
        parts = _key_parts(t, key)
        # rows with part of the key missing are reported as missing values, not duplicates
        complete = np.logical_and.reduce([p >= 0 for p in parts])
        pos = np.flatnonzero(complete)
        parts = [p[pos] for p in parts]
        # one int64 per key (mixed radix) so duplicates are found by hashing integers
        combined = parts[0].copy()
        span = int(combined.max()) + 1 if combined.size else 1
        for p in parts[1:]:
            width = int(p.max()) + 1 if p.size else 1
            if span * width >= 2**62:  # would overflow: fall back to a two-column frame
                combined = (
                    pd.DataFrame(dict(enumerate(parts)))
                    .groupby(list(range(len(parts))), sort=False)
                    .ngroup()
                    .to_numpy()
                )
                break
            combined = combined * width + p
            span *= width
        keys = pd.Series(combined)
        dup = keys.duplicated(keep=False).to_numpy()
        if not dup.any():
            continue
        pos, keys = pos[dup], keys[dup]
        first = (
            pd.Series(pos, index=keys.index)
            .groupby(keys.to_numpy(), sort=False)
            .transform("min")
            .to_numpy()
        )
        repeat = pos != first
        pos, first = pos[repeat], first[repeat]
        key_txt = ", ".join(key)
        msgs = [
            f"duplicate key ({key_txt}): same as the first occurrence at {w}"
            for w in t.where(first)
        ]
        out += t.emit(pos, ERROR, key[0], f"one row per ({key_txt})", msgs)
    return out


# ---------------------------------------------------------------------------------------
# episodes


def _check_episode_dates(ctx: _Context) -> list[Problem]:
    t = ctx.t["episodes"]
    if t.n == 0 or not t.has("removal_date"):
        return []
    out: list[Problem] = []
    rem = t.dates("removal_date")
    if t.has("discharge_date"):
        dis = t.dates("discharge_date")
        bad = np.flatnonzero((dis < rem).to_numpy())
        out += t.emit(
            bad,
            ERROR,
            "discharge_date",
            # the other date is named by its column, not quoted: one child's dates stay out of messages
            "a discharge date on or after this row's removal_date",
            "discharge before removal",
            _fmt_dates(dis.iloc[bad]),
        )
    for col, parent in (("tpr_mother_date", "mother"), ("tpr_father_date", "father")):
        if not t.has(col):
            continue
        tpr = t.dates(col)
        bad = np.flatnonzero((tpr < rem).to_numpy())
        out += t.emit(
            bad,
            WARNING,
            col,
            "a TPR date on or after this row's removal_date",
            f"termination of the {parent}'s rights before this removal (from an earlier "
            "episode?): it will not count as a TPR outcome of this episode",
            _fmt_dates(tpr.iloc[bad]),
        )
    if t.has("discharge_date") and t.has("discharge_reason"):
        dis = t.dates("discharge_date")
        reason = t.df["discharge_reason"].reset_index(drop=True)
        no_reason = np.flatnonzero((dis.notna() & reason.isna()).to_numpy())
        out += t.emit(
            ctx.uncovered(t, no_reason, "discharge_reason"),
            WARNING,
            "discharge_reason",
            "a discharge reason for every discharge",
            "discharge date without a discharge reason: the exit cannot be classified "
            "(reunification, permanency)",
        )
        no_date = ctx.uncovered(
            t, np.flatnonzero((dis.isna() & reason.notna()).to_numpy()), "discharge_date"
        )
        out += t.emit(
            no_date,
            WARNING,
            "discharge_date",
            "a discharge date when a reason is given",
            "discharge reason without a discharge date: the episode is treated as open",
            [str(v) for v in reason.iloc[no_date]],
        )
    return out


def _check_episode_children(ctx: _Context, kids: _Lookup) -> list[Problem]:
    t, c = ctx.t["episodes"], ctx.t["children"]
    if t.n == 0 or not t.has("child_id"):
        return []
    out: list[Problem] = []
    codes = t.code("child_id")
    where = kids(codes)
    if c.n and ctx.usable("children"):
        missing = np.flatnonzero((where < 0) & (codes >= 0))
        out += t.emit(
            missing,
            ERROR,
            "child_id",
            "a child_id listed in the children table",
            "episode of a child who is not in the children table",
        )
    if not (t.has("removal_date") and (c.has("birth_date") or c.has("birth_date_max"))):
        return out
    linked = np.flatnonzero(where >= 0)
    rem = t.dates("removal_date").to_numpy()[linked]
    exact = c.dates("birth_date")
    # a birth known only as an interval is judged on the side that makes a problem certain:
    # before birth if before the earliest possible birth, over an age if so at the latest one
    earliest = exact.fillna(c.dates("birth_date_min")).to_numpy()[where[linked]]
    birth = exact.fillna(c.dates("birth_date_max")).to_numpy()[where[linked]]
    ok = ~(np.isnat(rem) | np.isnat(birth))
    linked, rem, birth, earliest = linked[ok], rem[ok], birth[ok], earliest[ok]
    before_birth = rem < np.where(np.isnat(earliest), birth, earliest)
    bpos = linked[before_birth]
    out += t.emit(
        bpos,
        ERROR,
        "removal_date",
        [f"a removal on or after the child's birth date ({w})" for w in c.where(where[bpos])],
        "removal before the child's birth",
        _fmt_dates(rem[before_birth]),
    )
    # completed years of age, exactly (a birthday on the removal day counts)
    r, b = pd.DatetimeIndex(rem), pd.DatetimeIndex(birth)
    age = np.asarray(r.year - b.year) - (
        np.asarray(r.month * 100 + r.day) < np.asarray(b.month * 100 + b.day)
    ).astype(np.int64)
    implausible = (age > IMPLAUSIBLE_AGE_YEARS) & ~before_birth
    ipos = linked[implausible]
    out += t.emit(
        ipos,
        WARNING,
        "removal_date",
        [
            f"a birth date within {IMPLAUSIBLE_AGE_YEARS} years before removal ({w})"
            for w in c.where(where[ipos])
        ],
        f"implausible age at removal (over {IMPLAUSIBLE_AGE_YEARS}): check the birth date",
        _fmt_dates(rem[implausible]),
    )
    adult = (age >= ctx.max_age) & ~implausible & ~before_birth
    max_age = f"{ctx.max_age:g}"
    out += t.emit(
        linked[adult],
        WARNING,
        "removal_date",
        f"a child under {max_age} at removal",
        [
            f"child aged {a} at removal: episodes starting at {max_age} or older are excluded "
            "from cohorts"
            for a in age[adult]
        ],
        _fmt_dates(rem[adult]),
    )
    return out


def _check_episode_sequence(ctx: _Context) -> list[Problem]:
    """Overlapping episodes and open episodes followed by a later removal, per child."""
    t = ctx.t["episodes"]
    if t.n < 2 or not (t.has("child_id") and t.has("removal_date")):
        return []
    child = t.code("child_id")
    rem = t.dates("removal_date").to_numpy()
    dis = t.dates("discharge_date").to_numpy()
    keep = (child >= 0) & ~np.isnat(rem)
    # discharge before removal is its own error; do not let it hide or fake an overlap
    keep &= ~(dis < rem)
    pos = np.flatnonzero(keep)
    order = np.lexsort((pos, rem[pos], child[pos]))  # by child, removal, then file order
    pos = pos[order]
    c, r = child[pos], rem[pos]
    # exact repeats of (child, removal) are duplicate keys, reported once as such
    repeat = np.zeros(pos.size, dtype=bool)
    repeat[1:] = (c[1:] == c[:-1]) & (r[1:] == r[:-1])
    pos, c, r = pos[~repeat], c[~repeat], r[~repeat]
    if pos.size < 2:
        return []
    end = np.where(np.isnat(dis[pos]), np.datetime64(_OPEN, "ns"), dis[pos])
    same_as_prev = np.zeros(pos.size, dtype=bool)
    same_as_prev[1:] = c[1:] == c[:-1]
    same_as_next = np.zeros(pos.size, dtype=bool)
    same_as_next[:-1] = same_as_prev[1:]
    out: list[Problem] = []

    open_ = np.isnat(dis[pos])
    bad_open = np.flatnonzero(open_ & same_as_next)
    out += t.emit(
        pos[bad_open],
        ERROR,
        "discharge_date",
        "a discharge date before the child's next removal",
        [
            f"episode has no discharge date (open) but the same child has a later removal at {w}"
            for w in t.where(pos[bad_open + 1])
        ],
    )

    # Latest discharge among all earlier episodes of the child (open = for ever) and the row
    # that set it, so that an overlap with any earlier episode, not only the previous one,
    # is found and named.
    group = np.cumsum(~same_as_prev)
    running = pd.Series(end).groupby(group).cummax().to_numpy()
    setter = pd.Series(np.where(end == running, np.arange(pos.size), np.nan)).groupby(group).ffill()
    setter = setter.to_numpy()
    prev_end = np.empty_like(running)
    prev_end[0] = np.datetime64("NaT")
    prev_end[1:] = running[:-1]
    prev_setter = np.zeros(pos.size, dtype=np.int64)
    prev_setter[1:] = setter[:-1].astype(np.int64)
    # an overlap with an open earlier episode is already reported on the open episode's row
    overlap = same_as_prev & (prev_end != np.datetime64(_OPEN, "ns")) & (r < prev_end)
    k = np.flatnonzero(overlap)
    out += t.emit(
        pos[k],
        ERROR,
        "removal_date",
        "a removal on or after the discharge_date of the child's earlier episode",
        [
            f"episodes overlap: removal before the discharge of the same child's episode at {w}"
            for w in t.where(pos[prev_setter[k]])
        ],
        _fmt_dates(r[k]),
    )
    return out


# ---------------------------------------------------------------------------------------
# reports, families and participation


def _unknown_children(ctx: _Context, t: _Table, kids: _Lookup) -> np.ndarray:
    """Rows of ``t`` naming a child the children table does not have (none when it cannot
    be judged: no children table, or one that could not be read)."""
    if t.n == 0 or not t.has("child_id") or ctx.t["children"].n == 0 or not ctx.usable("children", t.name):
        return np.zeros(0, dtype=np.int64)
    codes = t.code("child_id")
    return np.flatnonzero((codes >= 0) & (kids(codes) < 0))


def _check_reports(ctx: _Context, kids: _Lookup) -> list[Problem]:
    t = ctx.t["reports"]
    return t.emit(
        _unknown_children(ctx, t, kids),
        WARNING,
        "child_id",
        "a child_id listed in the children table",
        "report of a child who is not in the children table: the report is not used",
    )


class _Crosswalk:
    """child -> family pairs (codes) from the families table and ``children.family_id``."""

    def __init__(self, ctx: _Context):
        child, family = [], []
        # the families table first, so that it wins where children.family_id disagrees
        for name in ("families", "children"):
            t = ctx.t[name]
            if t.n and t.has("child_id") and t.has("family_id"):
                child.append(t.code("child_id"))
                family.append(t.code("family_id"))
        c = np.concatenate(child) if child else np.empty(0, dtype=np.int64)
        f = np.concatenate(family) if family else np.empty(0, dtype=np.int64)
        ok = (c >= 0) & (f >= 0)
        c, f = c[ok], f[ok]
        self.known_family = np.zeros(ctx.n_family, dtype=bool)
        self.known_family[f] = True
        self.pairs = pd.DataFrame({"child": c, "family": f}).drop_duplicates()
        self.family_of = np.full(ctx.n_child, -1, dtype=np.int64)
        uniq, idx = np.unique(c, return_index=True)
        self.family_of[uniq] = f[idx]


def _check_family_agreement(ctx: _Context) -> list[Problem]:
    """``children.family_id`` that contradicts the families crosswalk."""
    c, f = ctx.t["children"], ctx.t["families"]
    if not (c.n and f.n and c.has("family_id") and f.has("child_id") and f.has("family_id")):
        return []
    in_families = _Lookup(f.code("child_id"), ctx.n_child)(c.code("child_id"))
    fam = c.code("family_id")
    other = f.code("family_id")[np.maximum(in_families, 0)]
    disagree = (in_families >= 0) & (fam >= 0) & (other >= 0) & (fam != other)
    return c.emit(
        np.flatnonzero(disagree),
        WARNING,
        "family_id",
        "the family_id the families crosswalk gives the child",
        "family_id differs from the families crosswalk (the crosswalk is used)",
    )


def _hinted(t: _Table, col: str, positions: np.ndarray, message: str, targets: list[pd.Series]) -> list[str]:
    """``message`` for each unlinked row, with what would make its id link when a rule does.

    Only the rows a check lists one by one get a hint (the rest are counted in one line):
    hinting a whole statewide file whose ids all lost their zeros would cost seconds and
    say nothing new.
    """
    pos = np.asarray(positions, dtype=np.int64)
    out = [message] * pos.size
    if pos.size == 0 or not targets:
        return out
    order = np.argsort(pos, kind="stable")[:MAX_LISTED_PER_CHECK]
    hints = explain_mismatch(t.df[col].iloc[pos[order]], pd.concat(targets, ignore_index=True))
    for i, h in zip(order, hints, strict=True):
        if h is not None:
            out[i] = f"{message}; {fix_hint(h)}"
    return out


def _check_crosswalk(ctx: _Context, kids: _Lookup) -> list[Problem]:
    """Crosswalk rows whose child is in no children table: the family link reaches no one."""
    f, c = ctx.t["families"], ctx.t["children"]
    if not c.has("child_id"):
        return []
    bad = _unknown_children(ctx, f, kids)
    return f.emit(
        bad,
        ERROR,
        "child_id",
        "a child_id listed in the children table",
        _hinted(
            f, "child_id", bad,
            "crosswalk row of a child who is not in the children table: the family's enrolment "
            "cannot reach this child, so a served child may be counted as a comparison",
            [c.df["child_id"]],
        ),
    )


def _check_participation(ctx: _Context, kids: _Lookup, cw: _Crosswalk) -> list[Problem]:
    t = ctx.t["participation"]
    if t.n == 0:
        return []
    out: list[Problem] = []
    child, fam = t.code("child_id"), t.code("family_id")
    linked = np.ones(t.n, dtype=bool)
    if ctx.t["children"].n and ctx.usable("children"):
        bad_child = (child >= 0) & (kids(child) < 0)
        linked &= ~bad_child
        pos = np.flatnonzero(bad_child)
        out += t.emit(
            pos,
            ERROR,
            "child_id",
            "a child_id listed in the children table",
            _hinted(
                t, "child_id", pos,
                "enrolment of a child who is not in the children table: the child could not be counted as treated",
                [ctx.t["children"].df["child_id"]],
            ),
        )
    # the crosswalk is incomplete when its source could not be read: judge nothing on it
    crosswalk_ok = ctx.usable("families") and (ctx.t["families"].n > 0 or ctx.usable("children"))
    if not crosswalk_ok:
        bad_fam = np.zeros(t.n, dtype=bool)
    elif ctx.n_family:
        bad_fam = (fam >= 0) & ~cw.known_family[np.maximum(fam, 0)]
    else:
        bad_fam = fam >= 0
    linked &= ~bad_fam
    why = (
        ""
        if cw.known_family.any()
        else " (no crosswalk: no families table and no children.family_id)"
    )
    pos = np.flatnonzero(bad_fam)
    family_ids = [ctx.t[n].df["family_id"] for n in ("families", "children") if ctx.t[n].n and ctx.t[n].has("family_id")]
    out += t.emit(
        pos,
        ERROR,
        "family_id",
        "a family_id listed in the families crosswalk",
        _hinted(
            t, "family_id", pos,
            f"enrolment of a family that is not in the families crosswalk: its children could not be counted as treated{why}",
            family_ids,
        ),
    )

    if t.has("enrolled_date"):
        enr = t.dates("enrolled_date")
        if t.has("exit_date"):
            ex = t.dates("exit_date")
            bad = np.flatnonzero((ex < enr).to_numpy())
            out += t.emit(
                bad,
                ERROR,
                "exit_date",
                "an exit date on or after this row's enrolled_date",
                "exit before enrolment",
                _fmt_dates(ex.iloc[bad]),
            )
        usable = linked & enr.notna().to_numpy() & ((child >= 0) | (fam >= 0))
        usable &= (enr <= ctx.extract_date).to_numpy()
        needed = ("reports",) if ctx.design == "prevention" else ("episodes",)
        if usable.any() and ctx.usable("children", "families", *needed):
            out += _check_enrolment_timing(ctx, t, np.flatnonzero(usable), enr, cw)

    for col in ("hours", "contacts"):
        if not t.has(col):
            continue
        v = pd.to_numeric(t.df[col], errors="coerce").reset_index(drop=True)
        bad = np.flatnonzero((v < 0).fillna(False).to_numpy(dtype=bool))  # blanks (<NA>) are not negative
        out += t.emit(
            bad,
            ERROR,
            col,
            f"{col} of zero or more",
            f"negative {col}",
            [f"{x:g}" for x in v.iloc[bad]],
        )
    return out


def _enrolment_children(t: _Table, pos: np.ndarray, cw: _Crosswalk) -> pd.DataFrame:
    """(participation position ``p``, ``child`` code) for every child an enrolment covers.

    Treatment is assigned to families: an enrolment names a family (or a child whose family
    the crosswalk gives) and covers every child of that family, plus the child it names.
    """
    child, fam = t.code("child_id")[pos], t.code("family_id")[pos]
    fam = np.where(
        (fam < 0) & (child >= 0),
        cw.family_of[np.maximum(child, 0)] if cw.family_of.size else -1,
        fam,
    )
    by_family = pd.DataFrame({"p": pos[fam >= 0], "family": fam[fam >= 0]})
    by_family = by_family.merge(cw.pairs, on="family", how="inner")[["p", "child"]]
    own = pd.DataFrame({"p": pos[child >= 0], "child": child[child >= 0]})
    return pd.concat([by_family, own], ignore_index=True)


def _check_enrolment_timing(
    ctx: _Context, t: _Table, pos: np.ndarray, enr: pd.Series, cw: _Crosswalk
) -> list[Problem]:
    pairs = _enrolment_children(t, pos, cw)
    enrolled = enr.to_numpy()
    if ctx.design == "prevention":
        r = ctx.t["reports"]
        first_of_child = np.full(ctx.n_child, np.datetime64("NaT"), dtype="datetime64[ns]")
        if r.n and r.has("report_date"):
            reports = pd.DataFrame({"child": r.code("child_id"), "report": r.dates("report_date")})
            reports = reports[(reports["child"] >= 0) & reports["report"].notna()]
            first = reports.groupby("child")["report"].min()
            first_of_child[first.index.to_numpy()] = first.to_numpy()
        pairs["first"] = first_of_child[pairs["child"].to_numpy()]
        first_report = pairs.groupby("p")["first"].min().reindex(pos).to_numpy()
        none = np.flatnonzero(np.isnat(first_report))
        before = np.flatnonzero(first_report > enrolled[pos])
        out = t.emit(
            pos[none],
            WARNING,
            "enrolled_date",
            "a maltreatment report of the family's children on or before enrolment",
            "no maltreatment report for the family's children: the enrolment has no index "
            "report and will not count as treated",
            _fmt_dates(enrolled[pos[none]]),
        )
        out += t.emit(
            pos[before],
            WARNING,
            "enrolled_date",
            "an enrolment on or after the first report of the family's children",
            "enrolment before the first maltreatment report of the family's children: "
            "it will not count as treated",
            _fmt_dates(enrolled[pos[before]]),
        )
        return out
    e = ctx.t["episodes"]
    covered = np.empty(0, dtype=np.int64)
    if e.n and e.has("removal_date"):
        rem, dis = e.dates("removal_date"), e.dates("discharge_date")
        episodes = pd.DataFrame(
            {"child": e.code("child_id"), "rem": rem, "end": dis.fillna(ctx.extract_date)}
        )
        # An episode without a usable span (no removal date, discharge before removal) is an
        # error of its own; enrolments of its family are not judged on it, to avoid a
        # cascade of warnings that would disappear once the dates are fixed.
        episodes["broken"] = (rem.isna() | (dis < rem)).to_numpy()
        episodes = episodes[episodes["child"].to_numpy() >= 0]
        # only the episodes of children some enrolment covers: keeps the join small
        episodes = episodes[np.isin(episodes["child"].to_numpy(), pairs["child"].to_numpy())]
        spans = pairs.merge(episodes, on="child", how="inner")
        when = enrolled[spans["p"].to_numpy()]
        inside = (spans["rem"].to_numpy() <= when) & (when <= spans["end"].to_numpy())
        covered = np.unique(spans["p"].to_numpy()[inside | spans["broken"].to_numpy()])
    outside = pos[~np.isin(pos, covered)]
    return t.emit(
        outside,
        WARNING,
        "enrolled_date",
        "an enrolment date within a foster-care episode of the family's children",
        "enrolment outside every foster-care episode of the family's children: this "
        "enrolment will not count as treated",
        _fmt_dates(enrolled[outside]),
    )


# ---------------------------------------------------------------------------------------


def _sort_key(p: Problem) -> tuple[str, int, str]:
    return (str(p.file), -1 if p.row is None else int(p.row), p.column or "")


def validate_extract(ext: Extract) -> ValidationReport:
    """Every problem in an extract: the loader's, then cross-row and cross-table checks.

    Parameters
    ----------
    ext : Extract
        The canonical tables; rows may carry ``_source_file``/``_source_row`` (tables built
        in memory without them are located by table name and row position + 2, as if
        written to a CSV with a header). ``ext.config``, when present, gives the design
        (``cohort.design``), the age limit (``cohort.max_age_at_removal``) and the source
        column names to show.

    Returns
    -------
    ValidationReport
        Load problems and validation problems, sorted by (file, row, column). See the
        module docstring for each check and its severity.

    Examples
    --------
    >>> import pandas as pd
    >>> from ppeval.extract import Extract
    >>> kids = pd.DataFrame({"child_id": ["a", "a"], "birth_date": pd.to_datetime(["2015-01-01"] * 2)})
    >>> rep = validate_extract(Extract({"children": kids}, "2023-12-31"))
    >>> print(rep.problems[0])  # doctest: +NORMALIZE_WHITESPACE
    error: children, row 3, column 'child_id': duplicate key (child_id): same as the first
    occurrence at children row 2; expected one row per (child_id)
    """
    ctx = _Context(ext)
    kids = _Lookup(ctx.t["children"].code("child_id"), ctx.n_child)
    cw = _Crosswalk(ctx)
    checks: list[Callable[[], list[Problem]]] = [
        lambda: _check_required(ctx),
        lambda: _check_dates_parse(ctx),
        lambda: _check_codes(ctx),
        lambda: _check_after_extract(ctx),
        lambda: _check_duplicates(ctx),
        lambda: _check_episode_dates(ctx),
        lambda: _check_episode_children(ctx, kids),
        lambda: _check_episode_sequence(ctx),
        lambda: _check_reports(ctx, kids),
        lambda: _check_family_agreement(ctx),
        lambda: _check_crosswalk(ctx, kids),
        lambda: _check_participation(ctx, kids, cw),
    ]
    problems = list(ext.load_problems)
    for check in checks:
        problems.extend(check())
    problems.sort(key=_sort_key)
    loaded = {str(f) for df in ext.tables.values() if schema.SOURCE_FILE in df.columns
              for f in pd.unique(df[schema.SOURCE_FILE].dropna())}
    report = ValidationReport(problems, causes=_root_causes(ext.load_problems, loaded))
    report.outside_rows = len(set().union(*(t.outside_hits for t in ctx.t.values())))
    return report


def problem_counts(report: ValidationReport) -> pd.DataFrame:
    """Problems counted by severity, file, column and message (a compact summary).

    Parameters
    ----------
    report : ValidationReport

    Returns
    -------
    DataFrame
        Columns ``severity, file, column, message, count, first_row``; errors first.

    Examples
    --------
    >>> rep = ValidationReport([Problem("warning", "e.csv", 3, "removal_date", "2020-01-01", "x", "late"),
    ...                         Problem("warning", "e.csv", 9, "removal_date", "2021-01-01", "x", "late")])
    >>> problem_counts(rep)[["count", "first_row"]].values.tolist()
    [[2, 3]]
    """
    cols = ["severity", "file", "column", "message", "count", "first_row"]
    if not len(report):
        return pd.DataFrame(columns=cols)
    df = report.to_frame()
    df["column"] = df["column"].fillna("")
    out = (
        df.groupby(["severity", "file", "column", "message"], sort=False, dropna=False)
        .agg(count=("row", "size"), first_row=("row", "min"))
        .reset_index()
    )
    out["_e"] = out["severity"] != ERROR
    out = out.sort_values(["_e", "file", "first_row"], kind="stable").drop(columns="_e")
    return out.reset_index(drop=True)[cols]


# --------------------------------------------------------------------------------------- triage
#: Tables whose rows a file of each preset feeds.
_FEEDS: dict[str, frozenset[str]] = {
    "afcars": frozenset({"children", "episodes"}),
    "ncands": frozenset({"reports", "children"}),
}

#: Problems that follow from a table missing rows, by the start of their message: a link
#: from another table that fails, or a gap in the records a preset stacks.
_KNOCK_ON: tuple[tuple[str, str], ...] = (
    ("episode of a child who is not in the children table", "children"),
    ("report of a child who is not in the children table", "children"),
    ("crosswalk row of a child who is not in the children table", "children"),
    ("enrolment of a child who is not in the children table", "children"),
    ("enrolment of a family that is not in the families crosswalk", "families"),
    ("enrolment outside every foster-care episode", "episodes"),
    ("the episode removed on", "episodes"),  # "... has no discharge record" (preset stacking)
    ("DLstFCDt is not between the removal dates", "episodes"),
    ("no maltreatment report for the family's children", "reports"),
    ("enrolment before the first maltreatment report", "reports"),
)


def _root_causes(load_problems: Iterable[Problem], loaded_files: set[str]) -> list[Problem]:
    """Load errors that kept a whole file out: missing, unreadable, a required column absent,
    dates refused. Every other problem may be a consequence; these are fixed first."""
    return [p for p in load_problems if p.severity == ERROR and str(p.file) not in loaded_files]


def _triage(problems: list[Problem], causes: list[Problem]) -> list[tuple[Problem, list[Problem]]]:
    """Each root cause with the problems that probably follow from it (in ``problems`` order)."""
    groups: list[tuple[Problem, list[Problem]]] = [(c, []) for c in causes]
    if not causes:
        return groups
    fed = [_FEEDS.get(str(c.table), frozenset({str(c.table)})) for c in causes]
    is_cause = {id(c) for c in causes}
    for p in problems:
        if id(p) in is_cause:
            continue
        table = next((t for start, t in _KNOCK_ON if p.message.startswith(start)), None)
        if table is None:
            continue
        for (_, knock_on), tables in zip(groups, fed, strict=True):
            if table in tables:
                knock_on.append(p)
                break
    return groups


def _counts_text(problems: list[Problem]) -> str:
    from .privacy import format_count

    n_e = sum(p.severity == ERROR for p in problems)
    n_w = len(problems) - n_e
    parts = [f"{format_count(n_e)} error(s)" if n_e else "", f"{format_count(n_w)} warning(s)" if n_w else ""]
    return " and ".join(x for x in parts if x)


def triage_lines(report: ValidationReport) -> list[str]:
    """The report as ``ppeval validate`` prints it: root causes first, each followed by the
    problems that probably follow from it (indented, counted), then every other problem.

    Examples
    --------
    >>> cause = Problem("error", "FC2016A.tab", None, None, None, "an existing file", "file not found", "afcars")
    >>> knock = Problem("error", "families.csv", 7, "child_id", None, "a child_id listed in the children table",
    ...                 "crosswalk row of a child who is not in the children table", "families")
    >>> other = Problem("warning", "a.csv", 3, "x", None, "y", "odd")
    >>> rep = ValidationReport([knock, other, cause], causes=[cause])
    >>> print("\\n".join(triage_lines(rep)))  # doctest: +NORMALIZE_WHITESPACE
    error: FC2016A.tab: file not found; expected an existing file
      <11 error(s) below probably follow from this (fix it first, then validate again):
        error: families.csv, row 7, column 'child_id': crosswalk row of a child who is not in the children table;
        expected a child_id listed in the children table
    warning: a.csv, row 3, column 'x': odd; expected y
    """
    lines: list[str] = []
    grouped: set[int] = set()
    for cause, knock_on in report.groups:
        lines.append(str(cause))
        grouped.add(id(cause))
        if knock_on:
            lines.append(f"  {_counts_text(knock_on)} below probably follow from this (fix it first, then validate again):")
            lines.extend(f"    {p}" for p in knock_on)
            grouped.update(id(p) for p in knock_on)
    lines.extend(str(p) for p in report.problems if id(p) not in grouped)
    return lines


_VARIABLE = (
    (re.compile(r"'[^']*'"), "'…'"),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "…"),
    (re.compile(r"\(looked for [^)]*\)"), ""),
    (re.compile(r"\b\d[\d,]{2,}\b"), "N"),  # counts and ids, not small constants ("aged 18")
)


def problem_kind(p: Problem) -> str:
    """A problem's message without the values that differ from row to row (dates, quoted
    values, numbers of three or more digits): problems of one kind share it.

    Examples
    --------
    >>> problem_kind(Problem("warning", "f", 3, "c", None, "x", "the episode removed on 2015-03-02 has no discharge record"))
    'the episode removed on … has no discharge record'
    """
    text = p.message
    for pattern, repl in _VARIABLE:
        text = pattern.sub(repl, text)
    return re.sub(r"\s+", " ", text).strip()


def _where(p: Problem) -> str:
    out = str(p.file)
    if p.row is not None:
        out += f" row {p.row}"
    if p.column:
        out += f" {p.column!r}"
    return out


def summary_lines(report: ValidationReport, *, max_message: int = 140) -> list[str]:
    """``ppeval validate --summary``: one line per kind of problem, with its count and first
    three locations; root causes first, the kinds that follow from each indented under it.

    Counts from 1 to 10 are shown as ``<11`` (:func:`ppeval.privacy.format_count`).

    Examples
    --------
    >>> ps = [Problem("warning", "e.csv", r, "removal_date", None, "x", f"late: {r + 2020}-01-01") for r in (3, 9, 12, 20)]
    >>> summary_lines(ValidationReport(ps))
    ["warning   <11  late: …  [e.csv row 3 'removal_date'; e.csv row 9 'removal_date'; e.csv row 12 'removal_date'; ...]"]
    """
    from .privacy import format_count

    def kinds(problems: list[Problem], indent: str) -> list[str]:
        order: dict[tuple[str, str], list[Problem]] = {}
        for p in sorted(problems, key=lambda q: q.severity != ERROR):
            order.setdefault((p.severity, problem_kind(p)), []).append(p)
        out = []
        for (severity, kind), ps in order.items():
            kind = kind if len(kind) <= max_message else kind[: max_message - 1] + "…"
            where = "; ".join(_where(p) for p in ps[:3]) + ("; ..." if len(ps) > 3 else "")
            out.append(f"{indent}{severity:<8}{format_count(len(ps)):>5}  {kind}  [{where}]")
        return out

    lines: list[str] = []
    grouped: set[int] = set()
    for cause, knock_on in report.groups:
        lines.extend(kinds([cause], ""))
        grouped.add(id(cause))
        if knock_on:
            lines.append(f"  probably following from it ({_counts_text(knock_on)}):")
            lines.extend(kinds(knock_on, "  "))
            grouped.update(id(p) for p in knock_on)
    lines.extend(kinds([p for p in report.problems if id(p) not in grouped], ""))
    return lines
