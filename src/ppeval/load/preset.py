"""Shared machinery of the AFCARS and NCANDS presets: element specs, reading, group maths.

A preset knows the element names of a federal file layout (matched case-insensitively,
because NDACAN capitalisation differs across years) and how to code each element. The
config's ``columns = { Element = "SourceName" }`` points an element at a differently named
column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import schema
from ..errors import ConfigError
from ..extract import InputFile
from ..problems import ERROR, WARNING, Problem
from .canonical import DEFAULT_MAX_PROBLEMS_PER_COLUMN, cell_problems, columns_found
from .dates import DateColumn, check_date_order, resolve_dates
from .parse import EXPECTED, MESSAGES, Parsed, as_text, parse_column
from .readers import RawTable, detect_format, read_file


@dataclass(frozen=True)
class Element:
    """One element of a federal file: how to parse it and where its problems belong."""

    name: str
    kind: str
    table: str
    codes: tuple[str, ...] | None = None
    code_map: Mapping[str, str] | None = None
    missing: tuple[str, ...] = ()
    other: str | None = None
    identifying: bool = False
    required: bool = False
    #: warn when a file lacks it (False for bookkeeping elements such as report periods)
    expected: bool = True

    def describe(self) -> str:
        if self.kind == "code":
            listed = ", ".join(f"{k} ({v})" for k, v in (self.code_map or {}).items())
            miss = f"; {', '.join(self.missing)} or blank = missing" if self.missing else ""
            return f"one of {listed}{miss}"
        if self.kind == "bool":
            extra = f"; {', '.join(self.missing)} = missing" if self.missing else ""
            return EXPECTED["bool"] + extra
        return EXPECTED.get(self.kind, "a value")


def check_overrides(preset: str, overrides: Mapping[str, str] | None, elements: Sequence[Element]) -> dict[str, str]:
    """The config's ``columns`` of a preset: element (any case) -> source name."""
    known = {e.name.lower(): e.name for e in elements}
    out: dict[str, str] = {}
    for key, source in (overrides or {}).items():
        if not isinstance(source, str):
            raise ConfigError(f'config: data.{preset}.columns.{key} must be the name of a source column')
        name = known.get(str(key).lower())
        if name is None:
            import difflib

            close = difflib.get_close_matches(str(key), [e.name for e in elements], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"config: data.{preset}.columns: {key!r} is not an element the {preset} preset reads{hint}")
        out[name] = str(source)
    return out


@dataclass
class PresetFile:
    """One file of a preset, read: the raw table and each element's parsed column."""

    index: int
    raw: RawTable
    positions: dict[str, int]
    parsed: dict[str, Parsed]
    problems: list[Problem]
    #: elements the file lacks (reported once per preset by :func:`absent_warnings`)
    absent: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.raw.ok and bool(self.parsed)

    def source_name(self, element: str) -> str:
        pos = self.positions.get(element)
        return self.raw.columns[pos] if pos is not None else element


def read_preset_file(
    preset: str,
    index: int,
    path: Path,
    label: str,
    elements: Sequence[Element],
    overrides: Mapping[str, str],
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> PresetFile:
    """Read one preset file: only the elements' columns, each parsed, every bad cell reported."""
    wanted = {(overrides.get(e.name) or e.name).lower(): e for e in elements}
    positions: dict[str, int] = {}

    def select(header: list[str]) -> list[int]:
        for i, h in enumerate(header):
            e = wanted.get(h.strip().lower())
            if e is not None and e.name not in positions:
                positions[e.name] = i
        return sorted(set(positions.values()))

    try:
        fmt = detect_format(label)
    except ConfigError:
        fmt = "tab"  # NDACAN text files come as .tab, .txt or .dat: tab-delimited
    raw = read_file(path, label=label, format=fmt, delimiter=delimiter, encoding=encoding, select=select, table=preset)
    problems = list(raw.problems)
    pf = PresetFile(index, raw, positions, {}, problems)
    if not raw.ok:
        return pf
    if raw.format not in ("csv", "tab"):
        # binary files do not call select(): match the header now
        select(raw.columns)
    missing_required = [e.name for e in elements if e.required and e.name not in positions]
    if missing_required:
        looked = [f"{n} (looked for {overrides[n]!r})" if n in overrides else n for n in missing_required]
        problems.append(
            Problem(
                ERROR,
                label,
                None,
                None,
                None,
                f"the {preset.upper()} columns {', '.join(missing_required)} (names in any case)",
                f"missing required column(s) {', '.join(looked)}; nothing was loaded from this file; "
                f"{columns_found(raw.columns)}",
                preset,
            )
        )
        return pf
    pf.absent = [e.name for e in elements if e.expected and e.name not in positions]
    # day and month in a provable order (the presets read ISO and MM/DD/YYYY dates only)
    text_dates = [
        DateColumn(raw.columns[positions[e.name]], as_text(raw.column(positions[e.name])), e.identifying)
        for e in elements
        if e.kind == "date" and e.name in positions
        and not (pa.types.is_timestamp(raw.column(positions[e.name]).type) or pa.types.is_date(raw.column(positions[e.name]).type))
    ]
    refused = check_date_order(
        text_dates, raw.rows, file=label, section=preset, table=preset,
        fix=f"the {preset} preset reads dates as YYYY-MM-DD, YYYYMMDD or MM/DD/YYYY only: write the file's dates that way",
    )
    if refused is not None:
        problems.append(refused)
        return pf
    for e in elements:
        pos = positions.get(e.name)
        if pos is None:
            continue
        p = parse_column(raw.column(pos), e.kind, codes=e.codes, code_map=e.code_map, missing=e.missing, other=e.other)
        reported = None
        if e.kind == "date":
            # placeholders (1900-01-01) to missing, Excel serials read or refused, each said once
            p, notes = resolve_dates(p, raw.rows, file=label, column=raw.columns[pos], table=e.table,
                                     identifying=e.identifying)
            problems.extend(notes.problems)
            reported = notes.reported
        pf.parsed[e.name] = p
        problems.extend(
            cell_problems(
                p if reported is None else replace(p, bad=p.bad & ~reported),
                raw.rows,
                file=label,
                column=raw.columns[pos],
                table=e.table,
                identifying=e.identifying,
                expected=e.describe(),
                message=MESSAGES.get(e.kind, "cannot be read"),
                limit=max_problems_per_column,
            )
        )
    return pf


def absent_warnings(preset: str, files: Sequence[tuple[str, list[str], list[str]]]) -> list[Problem]:
    """One warning per distinct set of absent elements (not one per period file).

    ``files`` holds ``(label, absent elements, columns found)`` per file read.
    """
    groups: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {}
    for label, absent, columns in files:
        if absent:
            groups.setdefault(tuple(absent), []).append((label, columns))
    out = []
    for absent, where in groups.items():
        label, columns = where[0]
        others = f" (and {len(where) - 1} other file(s) of the {preset} preset)" if len(where) > 1 else ""
        out.append(
            Problem(
                WARNING,
                label,
                None,
                None,
                None,
                f"the {preset.upper()} elements {', '.join(absent)}",
                f"column(s) {', '.join(absent)} not found{others}: left empty; {columns_found(columns)}",
                preset,
            )
        )
    return out


def element_values(pf: PresetFile, e: Element, n: int) -> Parsed:
    """The parsed element, or an all-missing column when the file lacks it."""
    p = pf.parsed.get(e.name)
    if p is not None:
        return p
    miss = np.ones(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    if e.kind in ("id", "str"):
        return Parsed(e.kind, pa.nulls(n, pa.string()), miss, bad)
    if e.kind == "date":
        return Parsed(e.kind, np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"), miss, bad)
    if e.kind == "float":
        return Parsed(e.kind, np.full(n, np.nan), miss, bad)
    if e.kind == "code":
        cats = tuple(e.codes or ())
        if e.other is not None and e.other not in cats:
            cats = (*cats, e.other)
        return Parsed(e.kind, np.full(n, -1, dtype=np.int16), miss, bad, categories=cats)
    return Parsed(e.kind, np.full(n, -1, dtype=np.int8 if e.kind == "bool" else np.int64), miss, bad)


# --------------------------------------------------------------------------- group maths
def group_starts(*keys: np.ndarray) -> np.ndarray:
    """Start positions of runs of equal keys in sorted arrays.

    Examples
    --------
    >>> group_starts(np.array([1, 1, 2, 2]), np.array([5, 6, 7, 7])).tolist()
    [0, 1, 2]
    """
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for k in keys:
        new[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(new)


def iter_preset_files(
    preset: str,
    paths: Sequence[str | Path],
    base_dir: str | Path,
    elements: Sequence[Element],
    overrides: Mapping[str, str],
    problems: list[Problem],
    inputs: list[InputFile],
    absent: list[tuple[str, list[str], list[str]]],
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> Iterator[tuple[int, str, list[PresetFile]]]:
    """Read a preset's files one at a time; yield ``(index, label, [file])`` for each usable one.

    Every file's problems go to ``problems`` and its provenance to ``inputs``; the columns a
    usable file lacks go to ``absent``. Relative paths are resolved against ``base_dir``.
    The file comes in a one-item list that the caller empties (``pf = box.pop()``), so that
    no reference stays in this generator: the caller can free a file's text columns as soon
    as it has taken what it needs.
    """
    for i, label in enumerate(str(p) for p in paths):
        path = Path(label)
        path = path if path.is_absolute() else Path(base_dir) / path
        pf = read_preset_file(
            preset, i, path, label, elements, overrides, encoding=encoding, delimiter=delimiter,
            max_problems_per_column=max_problems_per_column,
        )
        problems.extend(pf.problems)
        if pf.raw.sha256 is not None:
            inputs.append(InputFile(label, pf.raw.sha256, preset, len(pf.raw), pf.raw.format))
        if pf.ok:
            absent.append((label, pf.absent, pf.raw.columns))
            box = [pf]
            del pf
            yield i, label, box
        else:
            del pf


class Groups:
    """Runs of equal keys in sorted arrays, and the last valid element of each run.

    ``rank`` (unique integers) redefines "last" as the highest rank instead of the highest
    position; the arrays it needs are built once and reused for every column.

    Examples
    --------
    >>> g = Groups(np.array([0, 2]), 5)
    >>> g.last(np.array([True, False, False, True, True])).tolist()
    [0, 4]
    >>> Groups(np.array([0]), 3, rank=np.array([2, 0, 1])).last(np.array([False, True, True])).tolist()
    [2]
    """

    def __init__(self, starts: np.ndarray, n: int, rank: np.ndarray | None = None):
        self.starts = starts
        self.n = n
        if rank is None:
            self._key = np.arange(n, dtype=np.int64)
            self._pos: np.ndarray | None = None
        else:
            self._key = rank.astype(np.int64)
            if n and self._key.min() == 0 and self._key.max() == n - 1:  # a permutation of 0..n-1
                self._pos = np.empty(n, dtype=np.int64)
                self._pos[self._key] = np.arange(n, dtype=np.int64)
                self._sorted = None
            else:
                self._pos = np.argsort(self._key, kind="stable")
                self._sorted = self._key[self._pos]

    def __len__(self) -> int:
        return len(self.starts)

    def last(self, valid: np.ndarray) -> np.ndarray:
        """Per run, the position of the last valid element (-1 when none)."""
        if self.n == 0 or len(self.starts) == 0:
            return np.zeros(0, dtype=np.int64)
        best = np.maximum.reduceat(np.where(valid, self._key, -1), self.starts)
        if self._pos is None:
            return best
        if self._sorted is None:
            where = self._pos[np.clip(best, 0, None)]
        else:
            where = self._pos[np.clip(np.searchsorted(self._sorted, best), 0, self.n - 1)]
        return np.where(best >= 0, where, -1)


def last_valid(valid: np.ndarray, starts: np.ndarray, rank: np.ndarray | None = None) -> np.ndarray:
    """Per group, the position of the last valid element (-1 when none); see :class:`Groups`.

    Examples
    --------
    >>> last_valid(np.array([True, False, False, True, True]), np.array([0, 2])).tolist()
    [0, 4]
    """
    return Groups(starts, len(valid), rank).last(valid)


def take_or(values: np.ndarray, idx: np.ndarray, fill: object) -> np.ndarray:
    """``values[idx]`` with ``fill`` where ``idx`` is -1."""
    out = values[np.clip(idx, 0, None)] if len(values) else np.empty(len(idx), dtype=values.dtype)
    return np.where(idx >= 0, out, fill).astype(values.dtype) if len(idx) else out


_RACE_INDEX = {c: i for i, c in enumerate(schema.RACE_ETHNICITY_CODES)}


def derive_race(races: Mapping[str, np.ndarray], undetermined: np.ndarray, hispanic: np.ndarray) -> np.ndarray:
    """Race/ethnicity per record the way NDACAN derives RaceEthn, as positions in
    :data:`ppeval.schema.RACE_ETHNICITY_CODES` (-1 = nothing reported).

    Hispanic of any race first; then "unknown" when race is flagged as undetermined; then
    the single race flagged, "multiracial" for two or more, "unknown" for none. Flags are
    int8 arrays: 1 yes, 0 no, -1 missing.

    Examples
    --------
    >>> one = lambda *v: np.array(v, dtype=np.int8)
    >>> r = derive_race({"white": one(1, 1, 0, -1), "black": one(0, 1, 0, -1)},
    ...                 undetermined=one(0, 0, 0, -1), hispanic=one(0, 0, 1, -1))
    >>> [schema.RACE_ETHNICITY_CODES[i] if i >= 0 else None for i in r]
    ['white', 'multiracial', 'hispanic', None]
    """
    n = len(hispanic)
    count = np.zeros(n, dtype=np.int8)
    single = np.full(n, _RACE_INDEX["unknown"], dtype=np.int8)
    reported = (hispanic >= 0) | (undetermined >= 0)
    for name, flag in races.items():
        yes = flag == 1
        count += yes
        single = np.where(yes, _RACE_INDEX[name], single).astype(np.int8)
        reported |= flag >= 0
    out = np.where(count >= 2, _RACE_INDEX["multiracial"], single).astype(np.int8)
    out = np.where(undetermined == 1, _RACE_INDEX["unknown"], out)
    out = np.where(hispanic == 1, _RACE_INDEX["hispanic"], out)
    return np.where(reported, out, -1).astype(np.int8)


def string_column(values: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas ``string`` Series."""
    return pd.Series(pd.array(values.to_numpy(zero_copy_only=False), dtype="string"))


def bool_column(values: np.ndarray) -> pd.Series:
    """int8 1/0/-1 flags as a pandas ``boolean`` Series."""
    return pd.Series(pd.arrays.BooleanArray(values == 1, values < 0))


def code_column(codes: np.ndarray, categories: Sequence[str]) -> pd.Series:
    """Positions in ``categories`` (-1 = missing) as a pandas ``string`` Series."""
    return pd.Series(pd.Categorical.from_codes(codes.astype(np.int64), categories=list(categories)).astype("string"))


def date_column(values: np.ndarray) -> pd.Series:
    return pd.Series(values.astype("datetime64[ns]"))


def source_columns(labels: Sequence[str], file_index: np.ndarray, rows: np.ndarray) -> dict[str, pd.Series]:
    """``_source_file`` and ``_source_row`` from per-row file positions and row numbers."""
    names = np.asarray(list(labels), dtype=object)[file_index.astype(np.int64)]
    return {
        schema.SOURCE_FILE: pd.Series(pd.array(names, dtype="string")),
        schema.SOURCE_ROW: pd.Series(rows.astype(np.int64)),
    }


def shift_years(days: np.ndarray, years: np.ndarray | int) -> np.ndarray:
    """``days + years`` calendar years, as ``pandas.DateOffset(years=...)`` does it.

    A 29 February that lands in a year without one becomes 28 February (the month is kept),
    so an interval computed here agrees with the cohort's ``birth_date + DateOffset(years=18)``.
    Missing dates (NaT) stay missing.

    Examples
    --------
    >>> d = np.array(["2020-02-29", "2019-03-01", "NaT"], dtype="datetime64[D]")
    >>> shift_years(d, np.array([-1, -2, 3])).astype(str).tolist()
    ['2019-02-28', '2017-03-01', 'NaT']
    """
    d = np.asarray(days, dtype="datetime64[D]")
    nat = np.isnat(d)
    safe = np.where(nat, np.datetime64("2000-01-01", "D"), d)
    month = safe.astype("datetime64[M]")
    y = month.astype("datetime64[Y]").astype(np.int64) + 1970
    m = month.astype(np.int64) % 12
    dd = (safe - month.astype("datetime64[D]")).astype(np.int64)
    ty = y + np.asarray(years, dtype=np.int64)
    leap = (ty % 4 == 0) & ((ty % 100 != 0) | (ty % 400 == 0))
    dd = np.where((m == 1) & (dd == 28) & ~leap, 27, dd)
    out = ((ty - 1970) * 12 + m).astype("datetime64[M]").astype("datetime64[D]") + dd.astype("timedelta64[D]")
    return np.where(nat, np.datetime64("NaT", "D"), out)
