"""Date columns checked as a whole: the order of day and month, Excel serials, placeholders.

A cell-by-cell parser cannot tell ``04/05/2019`` (4 May or April 5) from its neighbours, so
each file's date columns are looked at together before any of them is parsed:

* **Order of day and month** (:func:`check_date_order`). Dates written ``NN/NN/YYYY`` (or
  with ``.`` or ``-``) prove their order when one part is above 12: ``23/04/2019`` is day
  first, ``04/23/2019`` month first. A file whose dates prove day first, or prove both
  orders, or that has at least :data:`AMBIGUOUS_MIN_VALUES` distinct such dates none of
  which proves either order (first-of-month dates, ``04/01/2019``, are the usual case), is
  refused: one error that names ``date_format`` and shows a value that proves the order
  (a birth date is never shown; its row and column are named instead). Nothing is loaded
  from a refused file, because reading it month first would silently swap day and month of
  every date whose day is 12 or less. A file with fewer such dates and no proof is read
  month first (``MM/DD/YYYY``), the documented default. With ``date_format`` set the check
  is skipped: the config has said what the order is.
* **Excel serial day numbers** (:func:`resolve_dates`): five-digit numbers (``43831``,
  10000 = 1927-05-18 to 99999 = 2173-10-14) in a date column, as a spreadsheet exports a
  date column formatted as numbers. A column whose every value is a serial is read as days
  since 1899-12-30 (Excel's 1900 date system), with a warning; serials among dates written
  as text are refused (one error for the column, the cells missing): such a column mixes
  cell formats and its serials may follow another date system.
* **Placeholder dates** (:data:`SENTINEL_DATES`, e.g. 1900-01-01, 9999-12-31, 1800-01-01)
  stand for "no date" in many systems: they become missing, with one warning per column
  counting them.

Examples
--------
>>> import numpy as np, pyarrow as pa
>>> cols = [DateColumn("StartDate", pa.array(["03/04/2019", "23/04/2019"]), False)]
>>> print(check_date_order(cols, np.array([2, 3]), file="roster.csv", section="participation").message)
dates are day first (DD/MM/YYYY): '23/04/2019' (there is no month 23); set date_format = "%d/%m/%Y" in [data.participation] (nothing was loaded from this file: read month first, every date whose day is 12 or less would have its day and month swapped)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..privacy import format_count
from ..problems import ERROR, WARNING, Problem
from .parse import Parsed

#: Dates that systems write for "no date": read as missing, with a warning per column.
SENTINEL_DATES: tuple[str, ...] = (
    "0001-01-01",  # .NET / Java minimum
    "1753-01-01",  # SQL Server datetime minimum
    "1800-01-01",
    "1899-12-30",  # Excel / OLE day 0
    "1899-12-31",
    "1900-01-01",  # Excel day 1, common "unknown" default
    "2999-12-31",
    "9999-01-01",
    "9999-12-31",  # "open ended"
)
_SENTINEL_KEYS = np.array([int(d.replace("-", "")) for d in SENTINEL_DATES], dtype="int64")
_SENTINEL_DAYS = np.array([d for d in SENTINEL_DATES if "1800" <= d[:4] <= "2200"], dtype="datetime64[D]")

#: At least this many distinct ``NN/NN/YYYY`` dates, none above 12 in either part, make a
#: file ambiguous. Under either order with days spread over the month, a date has its day
#: above 12 with probability about 0.6, so five dates without one happen by chance about
#: 1% of the time (0.4 ** 5); fewer are read month first.
AMBIGUOUS_MIN_VALUES = 5

#: Excel's 1900 date system: serial n is n days after 1899-12-30 (from 1900-03-01 on; the
#: serials accepted start in 1927, so Excel's fictitious 1900-02-29 does not matter).
EXCEL_EPOCH = np.datetime64("1899-12-30", "D")
Q = '"'  # the quote of a TOML string, inside f-strings
_SERIAL_RE = r"^\s*\d{5}(?:\.\d+)?\s*$"
_NUMERIC_DATE_RE = r"^\s*(?P<a>\d{1,2})(?P<sep>[/.\-])(?P<b>\d{1,2})[/.\-](?P<y>\d{4})(?:[ T].*)?$"


@dataclass(frozen=True)
class DateColumn:
    """One date column of a file, as text, for the order check."""

    name: str  # the source column name
    text: pa.Array
    identifying: bool  # a birth date: its values are never shown


def _here(col: DateColumn, value: str, why: str) -> str:
    """The proving value of a problem located at its row and column (a birth date: not shown)."""
    if col.identifying:
        return f"this birth date's {why} (the value is not shown: it identifies a child)"
    return repr(value)


def _show(col: DateColumn, row: int, value: str, why: str) -> str:
    if col.identifying:
        return f"row {row}, column {col.name!r} has a date whose {why} (the value is not shown: it identifies a child)"
    return f"row {row}, column {col.name!r} has {value!r}"


def check_date_order(
    columns: Sequence[DateColumn], rows: np.ndarray, *, file: str, section: str, table: str | None = None,
    fix: str | None = None,
) -> Problem | None:
    """The error refusing a file whose dates are day first, in two orders, or ambiguous.

    Parameters
    ----------
    columns : sequence of DateColumn
        The file's date columns written as text (typed date columns need no check).
    rows : numpy.ndarray
        The source line of each row (header = line 1).
    file : str
        The file as the config names it.
    section : str
        The config section the ``date_format`` hint names (``[data.<section>]``).
    table : str, optional
        The canonical table, for the problem.
    fix : str, optional
        What to do instead of setting ``date_format`` (for sources without that option).

    Returns
    -------
    Problem or None
        None when the dates are month first, ISO, or too few to tell.
    """
    day_first: tuple[DateColumn, int, str, str] | None = None
    month_first: tuple[DateColumn, int, str, str] | None = None
    unproved: tuple[DateColumn, int, str, str] | None = None
    n_day = n_month = 0
    distinct: list[pa.Array] = []
    for col in columns:
        if len(col.text) == 0 or col.text.null_count == len(col.text):
            continue
        # the patterns are matched on the distinct values only (a date column repeats few
        # thousand dates over millions of rows); rows are found again by one hash look-up
        counts = pc.value_counts(col.text.drop_null())
        values, n_rows = counts.field("values"), np.asarray(counts.field("counts"), dtype="int64")
        st = pc.extract_regex(values, _NUMERIC_DATE_RE)
        hit = np.asarray(pc.is_valid(st))
        if not hit.any():
            continue
        part = st.filter(pa.array(hit))
        a = np.asarray(pc.cast(pc.struct_field(part, "a"), pa.int64()))
        b = np.asarray(pc.cast(pc.struct_field(part, "b"), pa.int64()))
        sep = pc.struct_field(part, "sep")
        texts = values.filter(pa.array(hit))
        n_hit = n_rows[hit]
        dfirst = (a > 12) & (a <= 31) & (b >= 1) & (b <= 12)
        mfirst = (b > 12) & (b <= 31) & (a >= 1) & (a <= 12)
        # both parts 1-12: a date in either order (00/00/0000 and 45/67/2020 are no dates at all)
        either = (a >= 1) & (a <= 12) & (b >= 1) & (b <= 12)
        distinct.append(pc.utf8_trim_whitespace(texts.filter(pa.array(either))))
        n_day += int(n_hit[dfirst].sum())
        n_month += int(n_hit[mfirst].sum())
        for mask, slot in ((dfirst, "day"), (mfirst, "month"), (either, "none")):
            if not mask.any():
                continue
            # the first row holding one of these values
            where = pc.index_in(col.text, value_set=texts.filter(pa.array(mask)))
            i = int(np.flatnonzero(np.asarray(pc.is_valid(where)))[0])
            j = int(where[i].as_py())
            found = (col, int(rows[i]), texts.filter(pa.array(mask))[j].as_py().strip(),
                     sep.filter(pa.array(mask))[j].as_py())
            # the first proof from a column whose values may be shown wins over a birth date's
            if slot == "day" and (day_first is None or (day_first[0].identifying and not col.identifying)):
                day_first = found
            elif slot == "month" and (month_first is None or (month_first[0].identifying and not col.identifying)):
                month_first = found
            elif slot == "none" and (unproved is None or (unproved[0].identifying and not col.identifying)):
                unproved = found
    if not distinct:
        return None

    def advice(formats: str) -> str:
        return fix if fix is not None else f"set date_format = {formats} in [data.{section}]"

    refused = "nothing was loaded from this file"
    if day_first is not None and month_first is not None:
        dc, dr, dv, _ = day_first
        mc, mr, mv, _ = month_first
        message = (
            f"dates in two orders: {_show(dc, dr, dv, 'first part is above 12')} (day first; "
            f"{format_count(n_day)} such value(s)) and {_show(mc, mr, mv, 'second part is above 12')} (month first; "
            f"{format_count(n_month)} such value(s)); write every date of the file in one order, then "
            f"{advice(f'{Q}%d/%m/%Y{Q} (day first) or {Q}%m/%d/%Y{Q} (month first)')} ({refused})"
        )
        return Problem(ERROR, file, None, None, None, "dates in one order (date_format)", message, table)
    if day_first is not None:
        col, row, value, sep = day_first
        fmt = f"%d{sep}%m{sep}%Y"
        proof = _here(col, value, "first part is above 12")
        why = "" if col.identifying else f" (there is no month {value.split(sep)[0].lstrip('0')})"
        message = (
            f"dates are day first (DD{sep}MM{sep}YYYY): {proof}{why}; {advice(Q + fmt + Q)} "
            f"({refused}: read month first, every date whose day is 12 or less would have its day and month swapped)"
        )
        return Problem(ERROR, file, row, col.name, None, f"month-first dates, or date_format = \"{fmt}\"", message, table)
    if month_first is not None:
        col, row, value, sep = month_first
        if sep == "/":
            return None  # MM/DD/YYYY: what the default patterns read
        fmt = f"%m{sep}%d{sep}%Y"
        message = (
            f"dates are month first with {sep!r} between the parts: {_here(col, value, 'second part is above 12')}; "
            f"{advice(Q + fmt + Q)} ({refused})"
        )
        return Problem(ERROR, file, row, col.name, None, f"date_format = \"{fmt}\"", message, table)
    n_distinct = len(pc.unique(pa.concat_arrays(distinct)))
    if n_distinct < AMBIGUOUS_MIN_VALUES or unproved is None:
        return None
    col, row, value, sep = unproved
    message = (
        f"the order of day and month cannot be told: none of the {format_count(n_distinct)} distinct dates written "
        f"NN{sep}NN{sep}YYYY has a part above 12 (e.g. {_here(col, value, 'parts are both 12 or less')}); "
        f"{advice(f'{Q}%m{sep}%d{sep}%Y{Q} (month first) or {Q}%d{sep}%m{sep}%Y{Q} (day first)')} ({refused})"
    )
    return Problem(ERROR, file, row, col.name, None, "date_format (day or month first)", message, table)


@dataclass
class DateNotes:
    """What :func:`resolve_dates` did to one column: problems to report, cells not to list."""

    problems: list[Problem]
    #: bad cells already reported by a column-level problem (not to be listed one by one)
    reported: np.ndarray | None = None


def resolve_dates(
    parsed: Parsed, rows: np.ndarray, *, file: str, column: str, table: str | None, identifying: bool
) -> tuple[Parsed, DateNotes]:
    """Placeholders to missing and Excel serials read (or refused) in one parsed date column.

    Parameters
    ----------
    parsed : Parsed
        A date column from :func:`~ppeval.load.parse.parse_column`.
    rows : numpy.ndarray
        Source line of each row.
    file, column, table : str
        Where the column comes from (for the problems).
    identifying : bool
        True for a birth date: no value of it is shown.

    Returns
    -------
    (Parsed, DateNotes)

    Examples
    --------
    >>> from ppeval.load.parse import parse_column
    >>> p = parse_column(pa.array(["43831", "43832", "", "1900-01-01"]), "date")
    >>> q, notes = resolve_dates(p, np.array([2, 3, 4, 5]), file="e.csv", column="Removed", table="episodes",
    ...                          identifying=False)
    >>> [str(v) for v in q.values], q.bad.tolist()
    (['2020-01-01', '2020-01-02', 'NaT', 'NaT'], [False, False, False, False])
    >>> for p in notes.problems: print(p.message)
    <11 cell(s) hold placeholder dates (1900-01-01) that mean 'no date', the first on this row: read as missing
    every value is an Excel serial day number (e.g. row 2 has '43831' = 2020-01-01): read as days since 1899-12-30 (Excel's 1900 date system)
    """
    notes = DateNotes([])
    if parsed.kind != "date" or len(parsed) == 0:
        return parsed, notes
    values, missing, bad = parsed.values, parsed.missing, parsed.bad
    sentinel = _sentinels(parsed)
    if sentinel is not None and sentinel.any():
        n = int(sentinel.sum())
        which = "" if identifying else f" ({', '.join(_sentinel_texts(parsed, sentinel))})"
        first = int(rows[int(np.flatnonzero(sentinel)[0])])
        notes.problems.append(Problem(
            WARNING, file, first, column, None, "a date, or blank for none",
            f"{format_count(n)} cell(s) hold placeholder dates{which} that mean 'no date', the first on this row: "
            "read as missing", table))
        values = np.where(sentinel, np.datetime64("NaT", "D"), values).astype("datetime64[D]")
        missing = missing | sentinel
        bad = bad & ~sentinel
    if parsed.text is not None and bad.any():
        serial = bad & np.asarray(pc.match_substring_regex(parsed.text, _SERIAL_RE).fill_null(False))
        if serial.any():
            filled = ~missing | bad  # cells with a value (bad ones included), placeholders excluded
            i = int(np.flatnonzero(serial)[0])
            num = _serial_numbers(parsed.text, serial)
            shown_date = str(EXCEL_EPOCH + np.timedelta64(int(num[i]), "D"))
            eg = (f"row {int(rows[i])}" if identifying else
                  f"row {int(rows[i])} has {parsed.text[i].as_py().strip()!r} = {shown_date}")
            if (serial == filled).all():
                days = EXCEL_EPOCH + np.floor(num).astype("int64").astype("timedelta64[D]")
                values = np.where(serial, days, values).astype("datetime64[D]")
                missing = missing & ~serial
                bad = bad & ~serial
                notes.problems.append(Problem(
                    WARNING, file, None, column, None, "a date",
                    f"every value is an Excel serial day number (e.g. {eg}): read as days since 1899-12-30 "
                    "(Excel's 1900 date system)", table))
            else:
                notes.reported = serial
                notes.problems.append(Problem(
                    ERROR, file, int(rows[i]), column, None, "dates in one form (all text dates, or all serial numbers)",
                    f"{format_count(int(serial.sum()))} cell(s) are Excel serial day numbers (e.g. {eg}) among dates "
                    "written as text: not read (the column mixes cell formats; format the whole column as dates in the "
                    "spreadsheet and export it again)", table))
    if values is parsed.values and missing is parsed.missing and bad is parsed.bad:
        return parsed, notes
    out_of_range = None if parsed.out_of_range is None else parsed.out_of_range & bad
    return replace(parsed, values=values, missing=missing, bad=bad, out_of_range=out_of_range), notes


def _serial_numbers(text: pa.Array, serial: np.ndarray) -> np.ndarray:
    """The serial cells as numbers (0 elsewhere)."""
    out = np.zeros(len(text), dtype="float64")
    idx = np.flatnonzero(serial)
    sub = pc.utf8_trim_whitespace(text.take(pa.array(idx)))
    out[idx] = np.asarray(pc.cast(sub, pa.float64()), dtype="float64")
    return out


def _sentinels(parsed: Parsed) -> np.ndarray | None:
    """Cells holding a placeholder date, whether or not it lies in the years ppeval accepts."""
    hit = np.isin(parsed.values, _SENTINEL_DAYS)
    if parsed.text is not None and parsed.bad.any():
        # out-of-range placeholders (0001-01-01, 9999-12-31) are bad cells: find them in the text
        idx = np.flatnonzero(parsed.bad)
        key = _ymd_key(parsed.text.take(pa.array(idx)))
        hit[idx[np.isin(key, _SENTINEL_KEYS)]] = True
    return hit


def _ymd_key(text: pa.Array) -> np.ndarray:
    """``YYYYMMDD`` as an integer for ISO-like (``YYYY-MM-DD``, ``YYYY/MM/DD``, ``YYYYMMDD``) or
    ``MM/DD/YYYY`` text; -1 elsewhere."""
    s = pc.utf8_trim_whitespace(text)
    out = np.full(len(s), -1, dtype="int64")
    for pattern in (r"^(?P<y>\d{4})[-/]?(?P<m>\d{2})[-/]?(?P<d>\d{2})(?:[ T].*)?$",
                    r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})(?: .*)?$"):
        st = pc.extract_regex(s, pattern)
        hit = np.asarray(pc.is_valid(st))
        if not hit.any():
            continue
        part = st.filter(pa.array(hit))
        y, m, d = (np.asarray(pc.cast(pc.struct_field(part, k), pa.int64())) for k in ("y", "m", "d"))
        todo = np.flatnonzero(hit & (out < 0))
        key = y * 10000 + m * 100 + d
        out[todo] = key[np.isin(np.flatnonzero(hit), todo)]
    return out


def _sentinel_texts(parsed: Parsed, sentinel: np.ndarray) -> list[str]:
    """The placeholder dates found, as ISO text (a handful of distinct values)."""
    days = parsed.values[sentinel & ~np.isnat(parsed.values)]
    found = {str(d) for d in np.unique(days)}
    if parsed.text is not None:
        keys = _ymd_key(parsed.text.take(pa.array(np.flatnonzero(sentinel & np.isnat(parsed.values)))))
        found |= {f"{k // 10000:04d}-{k // 100 % 100:02d}-{k % 100:02d}" for k in np.unique(keys[keys >= 0]).tolist()}
    return sorted(found)
