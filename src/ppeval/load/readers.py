"""Readers: one function per source format, each returning a :class:`RawTable`.

A reader never changes its input (files are opened ``"rb"``, databases read-only), never
guesses types in text files (every cell is read as a string so that problems can be reported
per cell) and never raises for bad data: a missing, empty, mis-delimited or mis-encoded file
becomes a :class:`~ppeval.problems.Problem` and an unusable :class:`RawTable`.

Each file is read into memory once: the same bytes are hashed (sha256, for provenance),
checked (empty, encoding, delimiter) and parsed. Row numbers name what a person opening the
file would see: for text files the line (the
header is line 1, the first data row line 2, and a quoted value spanning lines counts every
line); for Excel the sheet row; for Parquet, SAS, Stata and SPSS the record number (first
record = 1); for SQL the 1-based result row.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "kids.csv").write_text("ChildID,DOB\\nA1,2015-02-03\\nA2,2016-07-08\\n")
>>> raw = read_file(d / "kids.csv", label="kids.csv")
>>> raw.columns, raw.rows.tolist(), raw.format
(['ChildID', 'DOB'], [2, 3], 'csv')
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import ConfigError
from ..problems import ERROR, Problem

#: File extension -> format name.
EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tab": "tab",
    ".tsv": "tab",
    ".txt": "tab",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".sas7bdat": "sas7bdat",
    ".xpt": "xpt",
    ".dta": "dta",
    ".sav": "sav",
    ".zsav": "sav",
}

#: Names accepted for the ``format`` key -> format name.
FORMATS: dict[str, str] = {
    "csv": "csv",
    "tab": "tab",
    "tsv": "tab",
    "txt": "tab",
    "text": "tab",
    "parquet": "parquet",
    "xlsx": "xlsx",
    "excel": "xlsx",
    "sas7bdat": "sas7bdat",
    "sas": "sas7bdat",
    "xpt": "xpt",
    "xport": "xpt",
    "dta": "dta",
    "stata": "dta",
    "sav": "sav",
    "spss": "sav",
}

TEXT_FORMATS = ("csv", "tab")
_DEFAULT_DELIMITER = {"csv": ",", "tab": "\t"}
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_DELIMITER_WORDS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
_UTF8 = {"utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig"}

_NON_SPACE = re.compile(rb"\S")

#: Ragged lines listed one by one per file; the rest are counted in one problem.
MAX_RAGGED_LISTED = 1000

# The csv module refuses fields over 128 KiB by default; a huge cell is a problem of that
# cell (reported as such), never a reason to drop the whole file.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))

#: Chooses the positions of the columns to read, given the header (None = all).
ColumnSelector = Callable[[list[str]], Sequence[int] | None]


@dataclass
class RawTable:
    """A source read as-is: its column names, the cells and the row number of each record.

    Attributes
    ----------
    label : str
        How problems name the source: the path as written in the config, or ``sql:<table>``.
    format : str
        ``csv``, ``tab``, ``parquet``, ``xlsx``, ``sas7bdat``, ``xpt``, ``dta``, ``sav``, ``sql``.
    columns : list of str
        Source column names in file order (as written, whitespace trimmed).
    data : pyarrow.Table or None
        Column ``i`` holds source column ``i`` (only the selected columns are read; the
        others are null-typed placeholders); None when the source could not be read.
    rows : numpy.ndarray
        The row number of each record (see the module notes).
    sha256 : str or None
        sha256 of the bytes read (of the result, for SQL).
    problems : list of Problem
        File-level problems and ragged rows.
    """

    label: str
    format: str
    columns: list[str] = field(default_factory=list)
    data: pa.Table | None = None
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sha256: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the cells could be read."""
        return self.data is not None

    def __len__(self) -> int:
        return 0 if self.data is None else self.data.num_rows

    def column(self, i: int) -> pa.ChunkedArray:
        """Source column ``i`` (by position, so duplicate names stay distinct)."""
        assert self.data is not None
        return self.data.column(i)

    def error(self, message: str, expected: str, row: int | None = None, table: str | None = None) -> None:
        self.problems.append(Problem(ERROR, self.label, row, None, None, expected, message, table))


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """The format of a source: the ``format`` key if given, else the file extension.

    Examples
    --------
    >>> detect_format("a/FC2016A.tab"), detect_format("x.dat", "csv"), detect_format("r.csv.gz")
    ('tab', 'csv', 'csv')
    """
    if fmt:
        key = fmt.strip().lower().lstrip(".")
        if key not in FORMATS:
            raise ConfigError(f"config: format {fmt!r} is not one of {', '.join(sorted(set(FORMATS)))}")
        return FORMATS[key]
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext == ".xls":
        raise ConfigError(f"{path}: .xls (Excel 97-2003) is not supported; save the sheet as .xlsx")
    if ext not in EXTENSIONS:
        raise ConfigError(
            f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; set format = one of "
            f"{', '.join(sorted(set(EXTENSIONS.values())))}"
        )
    return EXTENSIONS[ext]


def parse_delimiter(value: str | None, fmt: str) -> str:
    """The delimiter character from the config (``"\\t"``, ``"tab"``, ``","``...) or the format's default.

    Examples
    --------
    >>> parse_delimiter("tab", "csv"), parse_delimiter(None, "csv")
    ('\\t', ',')
    """
    if value is None:
        return _DEFAULT_DELIMITER.get(fmt, ",")
    d = _DELIMITER_NAMES.get(value.lower(), value)
    if len(d) != 1:
        raise ConfigError(f"config: delimiter {value!r} must be one character (or 'tab', 'comma', 'semicolon', 'pipe')")
    return d


def read_file(
    path: str | Path,
    *,
    label: str | None = None,
    format: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    sheet: str | int | None = None,
    select: ColumnSelector | None = None,
    table: str | None = None,
) -> RawTable:
    """Read one file of any supported format.

    Parameters
    ----------
    path : str or Path
        The file (already resolved against the config's folder).
    label : str, optional
        The name used in problems and provenance (default: ``path``).
    format, delimiter, encoding, sheet
        As in the config's ``[data.<table>]`` (``sheet`` is a name or a 0-based index).
    select : callable, optional
        Given the header, returns the positions of the columns to read (text files read only
        those, which is much faster for wide files).
    table : str, optional
        The canonical table the file feeds (recorded in problems).

    Returns
    -------
    RawTable

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.tab"
    >>> _ = p.write_text("a\\tb\\n1\\t2\\n3\\n")
    >>> raw = read_file(p, label="x.tab")
    >>> len(raw), raw.rows.tolist(), raw.problems[0].row
    (1, [2], 3)
    """
    label = label if label is not None else str(path)
    fmt = detect_format(path, format)
    raw = RawTable(label, fmt)
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a file" if p.is_dir() else "file not found"
        raw.error(f"{what} (looked for {p})", "an existing file", table=table)
        return raw
    if fmt in TEXT_FORMATS:
        return _read_text(p, raw, parse_delimiter(delimiter, fmt), encoding, select, table)
    if fmt == "parquet":
        return _read_parquet(p, raw, table)
    if fmt == "xlsx":
        return _read_excel(p, raw, sheet, table)
    return _read_stat(p, raw, encoding, table)


def _read_bytes(p: Path) -> bytes:
    with open(p, "rb") as fh:  # read-only: inputs are never modified
        return fh.read()


# --------------------------------------------------------------------------- text
def _line_of(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


def _decode_problem(raw: RawTable, data: bytes, encoding: str, table: str | None) -> str:
    """Decode with replacement after naming the first bad line and counting the others."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        first = _line_of(data, exc.start)
        text = data.decode(encoding, errors="replace")
        bad_lines = {first}
        pos = text.find("\ufffd")
        # Count the affected lines (stops early: the count is for the message only).
        while pos != -1 and len(bad_lines) < 10_000:
            bad_lines.add(text.count("\n", 0, pos) + 1)
            pos = text.find("\ufffd", pos + 1)
        more = f" and {len(bad_lines) - 1} more line(s)" if len(bad_lines) > 1 else ""
        suggestion = 'encoding = "latin-1"' if encoding.lower().replace("_", "-") in _UTF8 else 'the right encoding'
        raw.problems.append(
            Problem(
                ERROR,
                raw.label,
                first,
                None,
                None,
                f"text in the {encoding} encoding",
                f"bytes that are not valid {encoding} (byte 0x{data[exc.start]:02x}) on this line{more}; "
                f"the file was probably saved in another encoding (Excel on Windows uses cp1252): "
                f"set {suggestion} in the config",
                table,
            )
        )
        return text


def _read_text(
    p: Path, raw: RawTable, delimiter: str, encoding: str, select: ColumnSelector | None, table: str | None
) -> RawTable:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"config: unknown encoding {encoding!r} (for {raw.label})") from None
    data = _read_bytes(p)
    raw.sha256 = hashlib.sha256(data).hexdigest()
    if p.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raw.error(f"not a readable gzip file ({exc})", "a gzip-compressed text file", table=table)
            return raw
    if data.startswith(codecs.BOM_UTF8):  # Excel's "CSV UTF-8" writes a BOM: drop it silently
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and encoding.lower().replace("_", "-") in _UTF8:
        # Excel's "Unicode text" is UTF-16 with a byte-order mark, which cannot be misread:
        # decode it as such (the configured default, UTF-8, cannot apply to it).
        data = _decode_problem(raw, data, "utf-16", table).encode("utf-8")
        encoding = "utf-8"
    elif encoding.lower().replace("_", "-") in _UTF8 and _looks_utf16(data):
        raw.error(
            "the file looks UTF-16 encoded (a NUL byte between the characters) and has no byte-order mark; "
            'set encoding = "utf-16-le" (or "utf-16-be") in the config, or save it as UTF-8',
            "text in the utf-8 encoding",
            table=table,
        )
        return raw
    if _NON_SPACE.search(data) is None:
        raw.error(
            "the file is empty (0 bytes)" if not data else "the file is empty (blank lines only)",
            "a header line and at least one data row",
            table=table,
        )
        return raw
    enc = encoding.lower().replace("_", "-")
    if enc in _UTF8:
        if not data.isascii():
            text = _decode_problem(raw, data, "utf-8", table)
            if raw.problems:
                data = text.encode("utf-8")
    else:
        # Arrow reads UTF-8 only: transcode once (files in other encodings are the exception).
        data = _decode_problem(raw, data, encoding, table).encode("utf-8")

    if b"\n" not in data and b"\r" in data.rstrip(b"\r"):
        # Old Mac line ends (CR only): one line per CR, so rows are numbered as the file shows them.
        data = data.replace(b"\r", b"\n")
    header_end = data.find(b"\n")
    header_line = (data if header_end < 0 else data[:header_end]).rstrip(b"\r").decode("utf-8", errors="replace")
    try:
        header = next(csv.reader([header_line], delimiter=delimiter), [])
    except csv.Error as exc:
        raw.error(f"the header line cannot be parsed as delimited text ({exc})", "a header line of column names",
                  row=1, table=table)
        return raw
    names = [h.strip() for h in header]
    # A header ending in delimiters (e.g. a trailing tab) names no column there: rows may
    # then carry that many extra, empty fields, or not.
    trailing = 0
    while len(names) - trailing > 1 and not names[len(names) - trailing - 1]:
        trailing += 1
    if trailing:
        names = names[: len(names) - trailing]
    raw.columns = names
    if len(names) <= 1:
        for cand in (",", "\t", ";", "|"):
            if cand != delimiter and cand in header_line:
                word = _DELIMITER_WORDS[cand]
                shown = "\\t" if cand == "\t" else cand
                raw.error(
                    f"the header has one column and contains {word}s: the file looks {word}-delimited, "
                    f"not {_DELIMITER_WORDS.get(delimiter, repr(delimiter))}-delimited; set delimiter = \"{shown}\" "
                    f"(or fix the file)",
                    f"{_DELIMITER_WORDS.get(delimiter, repr(delimiter))}-delimited columns",
                    row=1,
                    table=table,
                )
                return raw
    if header_end < 0 or _NON_SPACE.search(data, header_end + 1) is None:
        raw.error(
            "the file has a header line but no data rows",
            "at least one data row below the header",
            table=table,
        )
        return raw
    positions = list(range(len(names))) if select is None else list(select(names))
    if not positions:  # nothing wanted (a preset found none of its columns): no need to parse
        raw.data, raw.rows = _placeholder_table({}, len(names), 0), np.zeros(0, dtype=np.int64)
        return raw
    fast = _parse_arrow(data, names + [""] * trailing, positions, delimiter)
    if fast is not None:
        raw.data, raw.rows = fast
        if trailing:
            raw.data = raw.data.select(list(range(len(names))))
    else:
        raw.data, raw.rows = _parse_python(data, names, positions, delimiter, raw, table, trailing)
    return raw


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 text without a byte-order mark: ASCII characters then alternate with NUL bytes."""
    head = data[:4096]
    if len(head) < 8 or b"\x00" not in head:
        return False
    even, odd = head[0::2], head[1::2]
    return max(even.count(0), odd.count(0)) > 0.4 * len(odd) and min(even.count(0), odd.count(0)) < 0.05 * len(odd)


def _placeholder_table(columns: dict[int, pa.Array], n_cols: int, n_rows: int) -> pa.Table:
    arrays = [columns.get(i, pa.nulls(n_rows)) for i in range(n_cols)]
    return pa.table(arrays, names=[f"c{i}" for i in range(n_cols)])


def _parse_arrow(data: bytes, names: list[str], positions: list[int], delimiter: str) -> tuple[pa.Table, np.ndarray] | None:
    """Multi-threaded Arrow parse; None when the file needs the exact (slower) line tracking.

    Arrow does not report line numbers, so its result is used only when every line of the
    file is exactly one record: no ragged rows, no blank lines inside, no quoted line breaks.
    Then the record ``i`` is on line ``i + 2``.
    """
    auto = [f"c{i}" for i in range(len(names))]
    invalid: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.actual_columns)
        return "skip"

    try:
        tbl = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pacsv.ReadOptions(column_names=auto, skip_rows=1, use_threads=True, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={auto[i]: pa.string() for i in positions},
                include_columns=[auto[i] for i in positions],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if invalid:
        return None
    # Lines up to the last non-blank one (counted in place: no copy of the data).
    end = len(data)
    while end > 0 and data[end - 1] in (10, 13):
        end -= 1
    lines = data.count(b"\n", 0, end) + 1
    if b"\r" in data and b"\r\n" not in data[:65536]:
        return None  # old Mac line ends: let the exact reader count them
    if lines != tbl.num_rows + 1:
        return None
    columns = {i: tbl.column(auto[i]).combine_chunks() for i in positions}
    rows = np.arange(2, tbl.num_rows + 2, dtype=np.int64)
    return _placeholder_table(columns, len(names), tbl.num_rows), rows


def _parse_python(
    data: bytes, names: list[str], positions: list[int], delimiter: str, raw: RawTable, table: str | None,
    trailing: int = 0,
) -> tuple[pa.Table | None, np.ndarray]:
    """Exact parse with the csv module: tracks the line of every record and names ragged rows.

    Only files Arrow could not map line-for-line come here (ragged rows, blank lines inside
    the file, values spanning lines), so a Python loop over rows is acceptable.
    """
    n = len(names)
    text = data.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    cols: list[list[str]] = [[] for _ in positions]
    rows: list[int] = []
    ragged: list[int] = []
    try:
        next(reader)
        prev = reader.line_num
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if not rec or (len(rec) == 1 and not rec[0].strip() and n > 1):
                continue  # blank line
            if trailing and n < len(rec) <= n + trailing and not any(v.strip() for v in rec[n:]):
                rec = rec[:n]  # the empty fields under the header's trailing delimiters
            if len(rec) != n:
                ragged.append(start)
                if len(ragged) > MAX_RAGGED_LISTED:
                    continue
                spans = reader.line_num - start
                why = (
                    f"; the record runs over {spans + 1} lines ({start}-{reader.line_num}): an unclosed quote (\")?"
                    if spans > 0
                    else " (a stray delimiter or a missing value?)"
                )
                raw.problems.append(
                    Problem(
                        ERROR,
                        raw.label,
                        start,
                        None,
                        None,
                        f"{n} fields, as in the header",
                        f"the row has {len(rec)} field(s) but the header has {n}; the row was not loaded{why}",
                        table,
                    )
                )
                continue
            rows.append(start)
            for j, i in enumerate(positions):
                cols[j].append(rec[i])
    except csv.Error as exc:
        raw.error(
            f"line {reader.line_num} cannot be parsed as delimited text ({exc}); nothing was loaded from this file",
            "delimited text",
            row=reader.line_num,
            table=table,
        )
        return None, np.zeros(0, dtype=np.int64)
    if len(ragged) > MAX_RAGGED_LISTED:
        rest = ragged[MAX_RAGGED_LISTED:]
        raw.error(
            f"{len(rest)} more line(s) have a different number of fields than the header (lines {rest[0]}-{rest[-1]}) "
            f"and were not loaded; only the first {MAX_RAGGED_LISTED} are listed",
            f"{n} fields, as in the header",
            table=table,
        )
    arrays = {i: pa.array(cols[j], type=pa.string()) for j, i in enumerate(positions)}
    return _placeholder_table(arrays, n, len(rows)), np.asarray(rows, dtype=np.int64)


# --------------------------------------------------------------------------- binary formats
def objects_to_arrow(values: Sequence[object] | pd.Series) -> pa.Array:
    """A column of Python objects (Excel cells, SQL results) as one Arrow array.

    Homogeneous columns keep their type (numbers, dates, text); mixed columns become text,
    with whole floats printed without ``.0`` and dates as ``YYYY-MM-DD``.

    Examples
    --------
    >>> import datetime
    >>> objects_to_arrow([1234.0, "AB", None]).to_pylist()
    ['1234', 'AB', None]
    >>> objects_to_arrow([datetime.datetime(2020, 1, 2), None]).type
    TimestampType(timestamp[us])
    """
    import datetime as dt
    from decimal import Decimal

    vals = list(values)
    kinds = {type(v) for v in vals if v is not None and not (isinstance(v, float) and np.isnan(v)) and v is not pd.NaT}
    clean = [None if (v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v))) else v for v in vals]
    if not kinds:
        return pa.nulls(len(vals), pa.string())
    if kinds <= {str}:
        return pa.array(clean, type=pa.string())
    if kinds <= {bool}:
        return pa.array(clean, type=pa.bool_())
    if kinds <= {int} or kinds <= {int, np.int64}:
        try:
            return pa.array(clean, type=pa.int64())
        except (OverflowError, pa.ArrowInvalid):
            return pa.array([None if v is None else str(v) for v in clean], type=pa.string())
    if kinds <= {int, float, Decimal, np.float64, np.int64}:
        return pa.array([None if v is None else float(v) for v in clean], type=pa.float64())
    if all(issubclass(k, dt.date) for k in kinds):
        try:
            return pa.array(pd.to_datetime(pd.Series(clean, dtype=object)).to_numpy(), type=pa.timestamp("us"))
        except (TypeError, ValueError, pa.ArrowInvalid):
            pass  # e.g. time-zone-aware and naive values mixed: read them as text below

    def text(v: object) -> str | None:
        if v is None:
            return None
        if isinstance(v, dt.datetime):
            return v.date().isoformat() if v.time() == dt.time(0) else v.isoformat(sep=" ")
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float | Decimal) and v == int(v):
            return str(int(v))
        return str(v)

    return pa.array([text(v) for v in clean], type=pa.string())


def frame_to_arrow(df: pd.DataFrame) -> pa.Table:
    """A pandas DataFrame (from pyreadstat or SQL) as an Arrow table with positional names.

    Examples
    --------
    >>> frame_to_arrow(pd.DataFrame({"id": [1.0, 2.0], "x": ["a", None]})).column_names
    ['c0', 'c1']
    """
    arrays = []
    for i in range(df.shape[1]):
        s = df.iloc[:, i]
        if s.dtype == object:
            arrays.append(objects_to_arrow(s))
        else:
            arrays.append(pa.array(s, from_pandas=True))
    return pa.table(arrays, names=[f"c{i}" for i in range(df.shape[1])]) if arrays else pa.table({})


def _finish_binary(raw: RawTable, names: list[str], tbl: pa.Table, rows: np.ndarray, table: str | None) -> RawTable:
    raw.columns = [str(c).strip() for c in names]
    if tbl.num_rows == 0:
        raw.error(
            "the file has column names but no data rows" if names else "the file is empty",
            "at least one data row",
            table=table,
        )
        return raw
    raw.data = tbl
    raw.rows = rows
    return raw


def _read_parquet(p: Path, raw: RawTable, table: str | None) -> RawTable:
    import pyarrow.parquet as pq

    data = _read_bytes(p)
    raw.sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        raw.error("the file is empty (0 bytes)", "a Parquet file", table=table)
        return raw
    try:
        tbl = pq.read_table(pa.BufferReader(pa.py_buffer(data)))
    except (pa.ArrowInvalid, OSError) as exc:
        raw.error(f"not a readable Parquet file ({exc})", "a Parquet file", table=table)
        return raw
    names = list(tbl.column_names)
    tbl = pa.table(list(tbl.columns), names=[f"c{i}" for i in range(len(names))])
    return _finish_binary(raw, names, tbl, np.arange(1, tbl.num_rows + 1, dtype=np.int64), table)


def _read_excel(p: Path, raw: RawTable, sheet: str | int | None, table: str | None) -> RawTable:
    import zipfile

    import openpyxl

    data = _read_bytes(p)
    raw.sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        raw.error("the file is empty (0 bytes)", "an Excel .xlsx workbook", table=table)
        return raw
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raw.error(f"not a readable .xlsx workbook ({exc})", "an Excel .xlsx workbook", table=table)
        return raw
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int):
            ws = wb.worksheets[sheet]
        else:
            ws = wb[sheet]
    except (IndexError, KeyError):
        raw.error(
            f"the workbook has no sheet {sheet!r}; its sheets are {', '.join(map(repr, wb.sheetnames))}",
            "an existing sheet name or 0-based sheet number",
            table=table,
        )
        wb.close()
        return raw
    names: list[str] | None = None
    cells: list[tuple] = []
    rows: list[int] = []
    for number, row in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1):
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            continue
        if names is None:
            # The header is the first non-empty row; trailing unnamed columns are ignored.
            width = max(i for i, v in enumerate(row) if v is not None) + 1
            names = ["" if v is None else str(v) for v in row[:width]]
            continue
        extra = [v for v in row[len(names) :] if v is not None]
        if extra:
            raw.problems.append(
                Problem(
                    ERROR,
                    raw.label,
                    number,
                    None,
                    None,
                    f"{len(names)} columns, as in the header row",
                    f"sheet row {number} has values right of the last named column; those cells were not loaded",
                    table,
                )
            )
        cells.append(tuple(row[: len(names)]) + (None,) * max(0, len(names) - len(row)))
        rows.append(number)
    wb.close()
    if names is None:
        raw.error("the sheet is empty", "a header row and at least one data row", table=table)
        return raw
    columns = list(zip(*cells, strict=True)) if cells else [() for _ in names]
    tbl = pa.table([objects_to_arrow(c) for c in columns], names=[f"c{i}" for i in range(len(names))])
    return _finish_binary(raw, names, tbl, np.asarray(rows, dtype=np.int64), table)


def _read_stat(p: Path, raw: RawTable, encoding: str, table: str | None) -> RawTable:
    import pyreadstat

    readers = {
        "sas7bdat": (pyreadstat.read_sas7bdat, "a SAS data set (.sas7bdat)"),
        "xpt": (pyreadstat.read_xport, "a SAS transport file (.xpt)"),
        "dta": (pyreadstat.read_dta, "a Stata data set (.dta)"),
        "sav": (pyreadstat.read_sav, "an SPSS data file (.sav)"),
    }
    reader, what = readers[raw.format]
    data = _read_bytes(p)
    raw.sha256 = hashlib.sha256(data).hexdigest()
    del data
    if p.stat().st_size == 0:
        raw.error("the file is empty (0 bytes)", what, table=table)
        return raw
    kwargs: dict[str, object] = {"dates_as_pandas_datetime": True}
    if encoding.lower().replace("_", "-") not in _UTF8:
        kwargs["encoding"] = encoding
    try:
        df, _meta = reader(str(p), **kwargs)
    except Exception as exc:  # pyreadstat raises its own ReadstatError/PyreadstatError types
        raw.error(f"not readable as {what} ({exc})", what, table=table)
        return raw
    names = [str(c) for c in df.columns]
    tbl = frame_to_arrow(df)
    return _finish_binary(raw, names, tbl, np.arange(1, len(df) + 1, dtype=np.int64), table)
