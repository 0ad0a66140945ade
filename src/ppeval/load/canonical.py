"""Column maps: a source's names and codes to a canonical table of :mod:`ppeval.schema`.

``columns = { canonical_name = "SourceName" }`` names the source column of a canonical one
(source names are matched case-insensitively; a canonical column without an entry is looked
for under its own name), and ``codes = { column = { "SourceValue" = "canonical" } }`` recodes
values before they are parsed. Columns that are not canonical pass through under their source
name (numbers become numeric, anything else text) and may be used as covariates.

Every table gets ``_source_file`` and ``_source_row`` (:data:`ppeval.schema.SOURCE_FILE`,
:data:`~ppeval.schema.SOURCE_ROW`) so validation can name the file and line of each row.

Examples
--------
>>> import pyarrow as pa, numpy as np
>>> from ppeval.load.readers import RawTable
>>> raw = RawTable("kids.csv", "csv", ["KID", "Born", "Gender"],
...                pa.table([pa.array(["a", "b"]), pa.array(["2015-01-02", "1/2/2016"]),
...                          pa.array(["F", "x"])], names=["c0", "c1", "c2"]),
...                np.array([2, 3]))
>>> res = to_canonical(raw, "children", columns={"child_id": "kid", "birth_date": "born", "sex": "gender"})
>>> res.frames()["children"]["sex"].tolist()
['female', <NA>]
>>> print(res.problems[0])
error: kids.csv, row 3, column 'Gender': unknown code (found 'x'); expected one of female, male, unknown
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from ..errors import ConfigError
from ..extract import InputFile
from ..problems import ERROR, WARNING, Problem
from .dates import DateColumn, check_date_order, resolve_dates
from .parse import (
    EXPECTED,
    MESSAGES,
    OUT_OF_RANGE_DATE,
    Parsed,
    apply_code_map,
    as_text,
    parse_column,
)
from .readers import RawTable

#: Bad cells listed one by one per file and column; further ones are counted in one problem.
DEFAULT_MAX_PROBLEMS_PER_COLUMN = 1000

#: Tables that need at least one of these columns (none of them is required on its own).
ONE_OF: dict[str, tuple[str, ...]] = {"participation": ("child_id", "family_id")}


@dataclass
class LoadResult:
    """Canonical tables read from one or more sources, with their problems and provenance.

    Attributes
    ----------
    tables : dict of str to list of DataFrame
        Pieces of each canonical table (one per source); :meth:`frames` concatenates them.
    problems : list of Problem
    inputs : list of InputFile

    Examples
    --------
    >>> r = LoadResult()
    >>> r.add_table("families", pd.DataFrame({"child_id": ["a"], "family_id": ["f"]}))
    >>> r.frames()["families"].shape
    (1, 2)
    """

    tables: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    inputs: list[InputFile] = field(default_factory=list)
    #: age intervals of children linked from NCANDS to foster care (``AFCARSID``): they fill
    #: the children table's interval where a child has no birth date (see :meth:`frames`)
    linked_ages: list[pd.DataFrame] = field(default_factory=list)

    def add_table(self, name: str, df: pd.DataFrame | None) -> None:
        if df is not None:
            self.tables.setdefault(name, []).append(df)

    def extend(self, other: LoadResult) -> LoadResult:
        for name, pieces in other.tables.items():
            self.tables.setdefault(name, []).extend(pieces)
        self.problems.extend(other.problems)
        self.inputs.extend(other.inputs)
        self.linked_ages.extend(other.linked_ages)
        return self

    def frames(self) -> dict[str, pd.DataFrame]:
        """Each table as one DataFrame (sources stacked; columns aligned with canonical dtypes).

        A child without a birth date (an AFCARS record with no DOB) gets the age interval of
        its linked NCANDS reports, when they give ages.
        """
        out = {name: concat_tables(name, pieces) for name, pieces in self.tables.items() if pieces}
        if self.linked_ages and "children" in out:
            from .ncands import fill_linked_ages

            out["children"] = fill_linked_ages(out["children"], self.linked_ages)
        return out


def missing_column(table: str, name: str, n: int) -> pd.Series:
    """An all-missing column of the canonical dtype (used to align stacked pieces)."""
    spec = schema.TABLES[table].column(name)
    if spec is None:
        return pd.Series(pd.NA, index=range(n), dtype=object)
    if spec.kind == "date":
        return pd.Series(np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"))
    if spec.kind == "float":
        return pd.Series(np.full(n, np.nan))
    return pd.Series(pd.NA, index=range(n), dtype=spec.dtype)


def concat_tables(table: str, pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack pieces of one canonical table, adding absent columns with the canonical dtype."""
    if len(pieces) == 1:
        return pieces[0]
    order: list[str] = []
    for df in pieces:
        order.extend(c for c in df.columns if c not in order)
    canonical = [c for c in order if c not in (schema.SOURCE_FILE, schema.SOURCE_ROW)]
    order = [*canonical, schema.SOURCE_FILE, schema.SOURCE_ROW]
    aligned = []
    for df in pieces:
        df = df.reset_index(drop=True)
        extra = {c: missing_column(table, c, len(df)) for c in order if c not in df.columns}
        if extra:
            df = pd.concat([df, pd.DataFrame(extra)], axis=1)
        aligned.append(df[order])
    return pd.concat(aligned, ignore_index=True)


# --------------------------------------------------------------------------- problems
#: Longest source value repeated in a problem; a longer one is cut (a 10 MB cell stays out of logs).
MAX_VALUE_SHOWN = 60
#: A column with at least this many bad cells, half or more of its values, is taken as
#: mislabelled: its values are not repeated (see :func:`cell_problems`).
MISLABELLED_MIN_BAD = 3
_MAX_NAMES_SHOWN = 80

_DATA_LIKE = re.compile(
    r"[+-]?\d+(?:\.\d*)?"  # a number, or an id made of digits
    r"|\d{4}[-/]\d{1,2}[-/]\d{1,2}(?:[ T].*)?|\d{1,2}/\d{1,2}/\d{4}(?: .*)?"  # a date
)


def shown_value(value: str | None) -> str | None:
    """A source value as a problem repeats it: cut to :data:`MAX_VALUE_SHOWN` characters.

    Examples
    --------
    >>> shown_value("9" * 100)
    '999999999999999999999999999999999999999999999999999999999999... (100 characters)'
    """
    if value is None or len(value) <= MAX_VALUE_SHOWN:
        return value
    return f"{value[:MAX_VALUE_SHOWN]}... ({len(value):,} characters)"


def header_looks_like_data(columns: Iterable[str]) -> bool:
    """True when a "header" holds a date or a bare number: the file probably has no header
    line and its first line is a record (whose ids and birth dates must not be repeated)."""
    return any(_DATA_LIKE.fullmatch(c.strip()) for c in columns if c)


def columns_found(columns: Sequence[str]) -> str:
    """``columns found: ...`` for a message, without repeating a first line of data.

    Examples
    --------
    >>> columns_found(["ChildID", "DOB"])
    'columns found: ChildID, DOB'
    >>> columns_found(["C001", "2012-05-01", "F01"])
    'the first line looks like a record, not column names (is the header line missing?); its values are not shown'
    """
    if header_looks_like_data(columns):
        return "the first line looks like a record, not column names (is the header line missing?); its values are not shown"
    names = [c if len(c) <= 40 else c[:40] + "..." for c in columns[:_MAX_NAMES_SHOWN]]
    more = f" and {len(columns) - _MAX_NAMES_SHOWN} more" if len(columns) > _MAX_NAMES_SHOWN else ""
    return f"columns found: {', '.join(names)}{more}"


def cell_problems(
    parsed: Parsed,
    rows: np.ndarray,
    *,
    file: str,
    column: str,
    table: str | None,
    identifying: bool,
    expected: str,
    message: str,
    limit: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> list[Problem]:
    """One error per cell that could not be parsed (values of identifying columns withheld)."""
    bad = np.flatnonzero(parsed.bad)
    if not len(bad):
        return []
    listed = bad if limit is None else bad[:limit]
    # A column whose values are mostly not of its kind is mislabelled (swapped or shifted
    # columns): its cells may be another column's ids or birth dates, so none is repeated.
    filled = int((~parsed.missing).sum()) + len(bad)
    mislabelled = len(bad) >= MISLABELLED_MIN_BAD and len(bad) >= 0.5 * filled
    if identifying or parsed.text is None or mislabelled:
        values: list[str | None] = [None] * len(listed)
    else:
        values = [shown_value(v) for v in parsed.text.take(pa.array(listed)).to_pylist()]
    far = parsed.out_of_range
    out = [
        Problem(ERROR, file, int(rows[i]), column, v, expected,
                OUT_OF_RANGE_DATE if far is not None and far[i] else message, table)
        for i, v in zip(listed, values, strict=True)
    ]
    if mislabelled:
        first = out[0]
        out[0] = Problem(
            first.severity, first.file, first.row, first.column, None, first.expected,
            f"{first.message}; {len(bad):,} of the {filled:,} values of this column are not "
            f"{expected.split(' (')[0]}: is the column mislabelled, or are columns swapped or shifted? "
            "(values not shown)",
            first.table,
        )
    if len(bad) > len(listed):
        rest = bad[len(listed) :]
        out.append(
            Problem(
                ERROR,
                file,
                None,
                column,
                None,
                expected,
                f"{message}: {len(rest)} more cell(s) in this column (rows {int(rows[rest[0]])}-{int(rows[rest[-1]])}); "
                f"only the first {len(listed)} are listed",
                table,
            )
        )
    return out


def expected_for(spec: schema.Column, codes_mapped: bool = False, date_format: str | None = None) -> str:
    if spec.kind == "code":
        base = "one of " + ", ".join(spec.codes or ())
        return base + (" (after the codes map)" if codes_mapped else "")
    if spec.kind == "date" and date_format:
        return f"a date in the format {date_format}"
    return EXPECTED.get(spec.kind, "a value")


# --------------------------------------------------------------------------- column matching
def match_columns(header: Iterable[str]) -> dict[str, int]:
    """Lower-cased source name -> position of its first occurrence."""
    out: dict[str, int] = {}
    for i, name in enumerate(header):
        out.setdefault(name.strip().lower(), i)
    return out


def _extra_column(arr: pa.ChunkedArray, code_map: Mapping[str, str | None] | None) -> pd.Series:
    """A pass-through column: numeric when every value is a number (without leading zeros)."""
    a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if code_map:
        a = apply_code_map(as_text(a), code_map)
    if pa.types.is_string(a.type) or pa.types.is_large_string(a.type):
        a = as_text(a)
        s = pc.utf8_trim_whitespace(a)
        valid = s.null_count < len(s)
        if valid:
            is_int = pc.match_substring_regex(s, r"^[+-]?(?:0|[1-9]\d{0,17})$")
            if pc.all(pc.or_(is_int, pc.is_null(s))).as_py():
                return pd.Series(pd.arrays.IntegerArray(
                    np.asarray(pc.cast(s, pa.int64()).fill_null(0), dtype="int64"), np.asarray(s.is_null(), dtype=bool)))
            is_num = pc.match_substring_regex(s, r"^[+-]?(?:0|[1-9]\d*)?(?:\.\d+)?(?:[eE][+-]?\d+)?$")
            nonempty = pc.greater(pc.utf8_length(s), 0)
            if pc.all(pc.or_(pc.and_(is_num, nonempty), pc.is_null(s))).as_py():
                return pd.Series(np.asarray(pc.cast(s, pa.float64()).to_numpy(zero_copy_only=False), dtype="float64"))
        return pd.Series(pd.array(a.to_numpy(zero_copy_only=False), dtype="string"))
    if pa.types.is_timestamp(a.type) or pa.types.is_date(a.type):
        return pd.Series(pd.to_datetime(a.to_numpy(zero_copy_only=False)).astype("datetime64[ns]"))
    null = np.asarray(a.is_null(), dtype=bool)
    if pa.types.is_integer(a.type):  # nullable, so a missing value does not turn counts into floats
        return pd.Series(pd.arrays.IntegerArray(np.asarray(a.fill_null(0), dtype="int64"), null))
    if pa.types.is_boolean(a.type):
        return pd.Series(pd.arrays.BooleanArray(np.asarray(a.fill_null(False), dtype=bool), null))
    return a.to_pandas()


def to_canonical(
    raw: RawTable,
    table: str,
    *,
    columns: Mapping[str, str] | None = None,
    codes: Mapping[str, Mapping[str, object]] | None = None,
    date_format: str | None = None,
    max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> LoadResult:
    """Translate one source to a canonical table, reporting every cell that cannot be parsed.

    Parameters
    ----------
    raw : RawTable
        The source as read (see :mod:`ppeval.load.readers`).
    table : str
        The canonical table (``children``, ``episodes``, ``reports``, ``participation``,
        ``families``).
    columns : mapping, optional
        ``{canonical_name: source_name}``.
    codes : mapping, optional
        ``{canonical_or_source_column: {source_value: canonical_value}}``.
    date_format : str, optional
        strftime format for all text dates of this source.
    max_problems_per_column : int or None
        Bad cells listed one by one per column (None = all).

    Returns
    -------
    LoadResult
        The table (absent when the source is unusable), the problems and the input's provenance.

    Examples
    --------
    >>> import pyarrow as pa, numpy as np
    >>> raw = RawTable("f.csv", "csv", ["Kid", "Fam"],
    ...                pa.table([pa.array(["1"]), pa.array(["F"])], names=["c0", "c1"]), np.array([2]))
    >>> to_canonical(raw, "families", columns={"child_id": "kid", "family_id": "fam"}).frames()["families"].shape
    (1, 4)
    """
    spec = schema.TABLES[table]
    for key, value in (columns or {}).items():
        if not isinstance(value, str):
            raise ConfigError(f'config: columns.{key} must be the name of a source column (e.g. {key} = "SourceName")')
    for key, value in (codes or {}).items():
        if not isinstance(value, Mapping):
            raise ConfigError(
                f'config: codes.{key} must map source values to canonical ones, e.g. codes.{key} = {{ "X" = "..." }}'
            )
    columns = {str(k): str(v) for k, v in (columns or {}).items()}
    codes = {str(k).lower(): {str(sk): (None if sv is None else _code_text(sv)) for sk, sv in v.items()}
             for k, v in (codes or {}).items()}
    res = LoadResult(problems=list(raw.problems))
    if raw.sha256 is not None:
        res.inputs.append(InputFile(raw.label, raw.sha256, table, len(raw), raw.format))
    if not raw.ok:
        return res
    where = match_columns(raw.columns)

    # canonical name -> source position
    chosen: dict[str, int] = {}
    absent_mapped: list[tuple[str, str]] = []
    for col in spec.columns:
        source = columns.get(col.name, col.name)
        pos = where.get(source.strip().lower())
        if pos is not None:
            chosen[col.name] = pos
        elif col.name in columns:
            absent_mapped.append((col.name, source))
    for name, source in columns.items():
        # map entries that are not canonical columns: renamed pass-through columns (and, in
        # episodes, removal_<reason> flags of any reason)
        if name in chosen or name in spec.names:
            continue
        pos = where.get(source.strip().lower())
        if pos is not None:
            chosen[name] = pos
        else:
            absent_mapped.append((name, source))
    if table == "episodes":
        # removal_<reason> flags under their canonical names, in any case
        for lower, pos in where.items():
            if lower.startswith("removal_") and lower != "removal_date" and pos not in chosen.values():
                chosen[lower] = pos

    required = [c for c in spec.required if c not in chosen]
    one_of = ONE_OF.get(table)
    if one_of and not any(c in chosen for c in one_of):
        required.append(" or ".join(one_of))
    if required:
        looked = [f"{c} (looked for {columns[c]!r})" if c in columns else c for c in required]
        hint = ""
        for name in columns:
            if name not in spec.names:
                close = difflib.get_close_matches(name, spec.names, n=1)
                if close:
                    hint += f"; the columns map has {name!r}: did you mean {close[0]!r}?"
        res.problems.append(
            Problem(
                ERROR,
                raw.label,
                None,
                None,
                None,
                f"columns {', '.join(required)} (or a columns map in the config)",
                f"missing required column(s) {', '.join(looked)}; {columns_found(raw.columns)}{hint}",
                table,
            )
        )
        return res
    for name, source in absent_mapped:
        res.problems.append(
            Problem(
                WARNING,
                raw.label,
                None,
                source,
                None,
                f"a column {source!r}",
                f"the columns map names {source!r} for {name}, but the file has no such column "
                f"(the column is left empty); {columns_found(raw.columns)}",
                table,
            )
        )

    if not date_format:
        # day and month in a consistent, provable order across the file's date columns
        text_dates = [
            DateColumn(raw.columns[pos], as_text(raw.column(pos)), spec.column(name).identifying)
            for name, pos in chosen.items()
            if (c := spec.column(name)) is not None and c.kind == "date"
            and not (pa.types.is_timestamp(raw.column(pos).type) or pa.types.is_date(raw.column(pos).type))
        ]
        refused = check_date_order(text_dates, raw.rows, file=raw.label, section=table, table=table)
        if refused is not None:
            res.problems.append(refused)
            return res

    out: dict[str, pd.Series] = {}
    index = pd.RangeIndex(len(raw))
    for name, pos in chosen.items():
        col = spec.column(name)
        src = raw.columns[pos]
        code_map = codes.get(name.lower()) or codes.get(src.lower())
        if col is None:
            s = _extra_column(raw.column(pos), code_map)
            s.index = index
            out[name] = s
            continue
        parsed = parse_column(
            raw.column(pos), col.kind, codes=col.codes, code_map=code_map, date_format=date_format
        )
        reported = None
        if col.kind == "date":
            # placeholders (1900-01-01) to missing, Excel serials read or refused, each said once
            parsed, notes = resolve_dates(parsed, raw.rows, file=raw.label, column=src, table=table,
                                          identifying=col.identifying)
            res.problems.extend(notes.problems)
            reported = notes.reported
        out[name] = parsed.to_series(index)
        res.problems.extend(
            cell_problems(
                parsed if reported is None else replace(parsed, bad=parsed.bad & ~reported),
                raw.rows,
                file=raw.label,
                column=src,
                table=table,
                identifying=col.identifying,
                expected=expected_for(col, bool(code_map), date_format),
                message=MESSAGES.get(col.kind, "cannot be read"),
                limit=max_problems_per_column,
            )
        )
    used = set(chosen.values())
    bookkeeping = {schema.SOURCE_FILE, schema.SOURCE_ROW}
    for pos, src in enumerate(raw.columns):
        if pos in used or not src:
            continue
        if src in out or src in bookkeeping:
            res.problems.append(
                Problem(
                    WARNING,
                    raw.label,
                    None,
                    src,
                    None,
                    "distinct column names",
                    "the column name repeats another column (case-insensitively) or a reserved name; it was not loaded",
                    table,
                )
            )
            continue
        s = _extra_column(raw.column(pos), codes.get(src.lower()))
        s.index = index
        out[src] = s
    ordered = [c for c in spec.names if c in out]
    ordered += sorted(c for c in out if c.startswith("removal_") and c not in ordered and table == "episodes")
    ordered += [c for c in out if c not in ordered]
    df = pd.DataFrame({c: out[c] for c in ordered}, index=index)
    df[schema.SOURCE_FILE] = pd.Series(pd.array([raw.label] * len(raw), dtype="string"), index=index)
    df[schema.SOURCE_ROW] = raw.rows.astype("int64")
    res.add_table(table, df)
    return res


def _code_text(value: object) -> str:
    """A TOML code-map target as text (true/false and numbers allowed)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
