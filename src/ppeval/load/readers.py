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
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ..config import DEFAULT_MAX_FILE_MB
from ..errors import ConfigError, DataError
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
    max_bytes: int | None | EllipsisType = ...,
) -> RawTable:
    """Read one file of any supported format.

    Before the file is read its size and a few samples of its bytes are checked
    (:func:`sniff`): a file that is not what its name or ``format`` says (compressed, a
    workbook under a text name, a program, a PDF, NUL bytes...) or is larger than the cap
    is refused with a problem naming the fix, without being read.

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
    max_bytes : int or None, optional
        Refuse files larger than this (None = no cap; default: the cap of
        :func:`file_size_cap`, ``DEFAULT_MAX_FILE_MB`` unless ``[data] max_file_mb`` sets it).

    Returns
    -------
    RawTable

    Raises
    ------
    DataError
        The machine ran out of memory reading the file (the message names the file, its size
        and the options).

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
    cap = max_file_bytes() if isinstance(max_bytes, EllipsisType) else max_bytes
    sep = parse_delimiter(delimiter, fmt) if fmt in TEXT_FORMATS else None
    refused = sniff(p, fmt, delimiter=sep, encoding=encoding, max_bytes=cap)
    if refused is not None:
        raw.error(refused[0], refused[1], table=table)
        return raw
    try:
        if fmt in TEXT_FORMATS:
            assert sep is not None
            return _read_text(p, raw, sep, encoding, select, table, cap)
        if fmt == "parquet":
            return _read_parquet(p, raw, table)
        if fmt == "xlsx":
            return _read_excel(p, raw, sheet, table)
        return _read_stat(p, raw, encoding, table)
    except MemoryError:
        raise DataError(out_of_memory(label, p)) from None


def out_of_memory(label: str, path: Path | None = None) -> str:
    """The message for running out of memory while reading ``label``: its size and the options.

    Examples
    --------
    >>> print(out_of_memory("FC2016.tab"))
    FC2016.tab: out of memory while reading this file; reading a file needs about 3-4 times its size in memory: use a machine with more memory or split the file (e.g. by year); for several large AFCARS/NCANDS files set [data] engine = "duckdb" (it keeps one file in memory at a time)
    """
    size = ""
    if path is not None:
        try:
            size = f" ({_size_text(path.stat().st_size)})"
        except OSError:
            pass
    return (
        f"{label}: out of memory while reading this file{size}; reading a file needs about 3-4 times its size "
        "in memory: use a machine with more memory or split the file (e.g. by year); for several large "
        'AFCARS/NCANDS files set [data] engine = "duckdb" (it keeps one file in memory at a time)'
    )


def _read_bytes(p: Path) -> bytes:
    with open(p, "rb") as fh:  # read-only: inputs are never modified
        return fh.read()


# --------------------------------------------------------------------------- size and content checks
#: Bytes read from the start (and, for large or sparse files, the middle and end) of a file
#: to check that it is what its name says before the whole file is read.
SNIFF_BYTES = 64 * 1024

_MAX_FILE_BYTES: ContextVar[int | None] = ContextVar("ppeval_max_file_bytes", default=DEFAULT_MAX_FILE_MB * 2**20)

_SAS7BDAT_MAGIC = bytes.fromhex("c2ea8160b31411cfbd92080009c7318c181f1011")
_NUL_RUN = b"\x00" * 64  # never inside text in any encoding (UTF-32 has at most 3 NULs in a row)
# Control bytes that never occur in text (NUL is judged separately: UTF-16 and UTF-32 have many).
_CONTROL = bytes(b for b in range(1, 32) if b not in (9, 10, 11, 12, 13, 26)) + b"\x7f"

#: What each format's files start with (formats without a fixed signature are not listed).
_SIGNATURE = {
    "parquet": "a Parquet file",
    "xlsx": "an Excel .xlsx workbook",
    "sav": "an SPSS data file (.sav)",
    "sas7bdat": "a SAS data set (.sas7bdat)",
    "dta": "a Stata data set (.dta)",
    "xpt": "a SAS transport file (.xpt)",
}


@contextmanager
def file_size_cap(max_mb: float | None) -> Iterator[None]:
    """Refuse files larger than ``max_mb`` megabytes (2**20 bytes) in :func:`read_file` calls inside.

    ``None`` lifts the cap. :func:`ppeval.load.load_config` sets it from ``[data] max_file_mb``
    so that every reader (the presets too) applies it.

    Examples
    --------
    >>> with file_size_cap(1):
    ...     max_file_bytes()
    1048576
    """
    token = _MAX_FILE_BYTES.set(None if max_mb is None else int(max_mb * 2**20))
    try:
        yield
    finally:
        _MAX_FILE_BYTES.reset(token)


def max_file_bytes() -> int | None:
    """The size cap in force (bytes; None = none)."""
    return _MAX_FILE_BYTES.get()


def _size_text(n: float) -> str:
    """A file size as people read it: ``5.0 GB``, ``12.3 MB``, ``800 bytes``.

    Examples
    --------
    >>> _size_text(5 * 2**30), _size_text(1536 * 1024), _size_text(800)
    ('5.0 GB', '1.5 MB', '800 bytes')
    """
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def _format_fix(fmt: str) -> str:
    return f'name it with the .{fmt} extension or set format = "{fmt}" in the config'


def identify(head: bytes) -> tuple[str, str, str] | None:
    """What a file is, from its first bytes: ``(kind, description, what to do)``; None = not recognised.

    Recognises compressed files and archives, Excel and Office files, the statistics formats
    ppeval reads, PDF, images, programs, SQLite databases, web pages and NUL-filled (sparse
    or pre-allocated) files. Text files are not recognised (None).

    Examples
    --------
    >>> identify(b"\\x1f\\x8b\\x08\\x00")[:2]
    ('gzip', 'a gzip-compressed file')
    >>> identify(b"\\x7fELF\\x02\\x01")[0], identify(b"%PDF-1.7")[0], identify(b"child_id,dob\\n") is None
    ('program', 'pdf', True)
    """
    h = head
    if not h:
        return None
    if h.count(0) == len(h):
        return ("nul", "filled with NUL bytes (a sparse or pre-allocated file: an interrupted copy or download?)",
                "copy or download the file again")
    if h.startswith(b"\x1f\x8b"):
        return ("gzip", "a gzip-compressed file", "decompress it (gunzip) or name it with .gz at the end, e.g. .csv.gz")
    if h.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        if b"xl/" in h:  # the parts of a workbook (xl/workbook.xml, xl/worksheets/...) come first
            return ("xlsx", "an Excel .xlsx workbook", _format_fix("xlsx"))
        return ("zip", "a zip archive", "extract the data file from it and name that file in the config")
    if h.startswith(b"PAR1"):
        return ("parquet", "a Parquet file", _format_fix("parquet"))
    if len(h) >= 32 and h[12:32] == _SAS7BDAT_MAGIC:
        return ("sas7bdat", "a SAS data set", _format_fix("sas7bdat"))
    if h.startswith((b"$FL2", b"$FL3")):
        return ("sav", "an SPSS data file", _format_fix("sav"))
    if h.startswith(b"<stata_dta>"):
        return ("dta", "a Stata data set", _format_fix("dta"))
    if h.startswith(b"HEADER RECORD*******LIB"):
        return ("xpt", "a SAS transport file", _format_fix("xpt"))
    if h.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return ("ole2", "an Excel 97-2003 workbook (.xls) or another old Office document",
                "open it in Excel and save the sheet as .xlsx or as CSV")
    if h.startswith(b"%PDF"):
        return ("pdf", "a PDF document", "export the table from its source system as CSV (a PDF cannot be read as data)")
    if h.startswith((b"\x7fELF", b"MZ", b"\xca\xfe\xba\xbe", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf",
                     b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"#!")):
        return ("program", "a program or script, not a data file", "check the path: it names the wrong file")
    if h.startswith(b"SQLite format 3\x00"):
        return ("sqlite", "an SQLite database",
                'read it as a SQL source: url = "sqlite:///<path>" and query = "SELECT ..." in the config')
    if h.startswith(b"ARROW1"):
        return ("arrow", "an Arrow IPC (Feather) file", "convert it to Parquet or CSV")
    compressed = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7-Zip",
                  b"Rar!\x1a\x07": "RAR"}
    for magic, name in compressed.items():
        if h.startswith(magic):
            return ("compressed", f"a {name}-compressed file", "decompress it and name the decompressed file")
    images = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
    for magic, name in images.items():
        if h.startswith(magic):
            return ("image", f"a {name} image", "check the path: it names the wrong file")
    if len(h) > 262 and h[257:262] == b"ustar":
        return ("tar", "a tar archive", "extract the data file from it and name that file in the config")
    start = h.lstrip(codecs.BOM_UTF8 + b" \t\r\n")[:64].lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return ("html", "a web page (HTML), not the data",
                "the download probably saved a login or error page: download the data again")
    return None


def _is_wide_encoding(encoding: str) -> bool:
    return encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32", "utf16", "utf32"))


def _binary_share(sample: bytes) -> float:
    """The share of bytes in ``sample`` that never occur in text (control bytes other than NUL)."""
    if not sample:
        return 0.0
    return (len(sample) - len(sample.translate(None, _CONTROL))) / len(sample)


def _read_at(fh: BinaryIO, offset: int, n: int = SNIFF_BYTES) -> bytes:
    fh.seek(offset)
    return fh.read(n)


def _samples(p: Path, size: int, sparse: bool, text: bool) -> list[tuple[int, bytes]]:
    """``(offset, bytes)`` samples of the file: its start, and for large or sparse files its middle and end."""
    with open(p, "rb") as fh:  # read-only: inputs are never modified
        out = [(0, fh.read(SNIFF_BYTES))]
        if size > 3 * SNIFF_BYTES and (sparse or text):
            out.append((size // 2, _read_at(fh, size // 2)))
            out.append((size - SNIFF_BYTES, _read_at(fh, size - SNIFF_BYTES)))
    return out


def _gzip_head(p: Path) -> bytes | None:
    """The first decompressed bytes of a gzip file (None when they cannot be read: reported later)."""
    try:
        with gzip.open(p, "rb") as gz:
            return gz.read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        return None


def sniff(
    p: Path, fmt: str, *, delimiter: str | None = None, encoding: str = "utf-8", max_bytes: int | None = None
) -> tuple[str, str] | None:
    """Why a file cannot be read as ``fmt``, judged from its size and a few samples of its bytes.

    Returns ``(message, expected)`` for a :class:`~ppeval.problems.Problem`, or None when the
    file looks like what its name (or ``format``) says. Only ``SNIFF_BYTES`` from the start
    (and, for large or sparse files, from the middle and the end) are read, so a huge or
    sparse file is refused at once.

    Examples
    --------
    >>> import tempfile, pathlib, gzip
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "FC2016.tab"
    >>> _ = p.write_bytes(gzip.compress(b"StFCID\\tDOB\\n1\\t2015-01-01\\n"))
    >>> print(sniff(p, "tab")[0])
    the file is a gzip-compressed file, not tab-delimited text as its name or format says; decompress it (gunzip) or name it with .gz at the end, e.g. .csv.gz
    """
    st = p.stat()
    size = st.st_size
    if size == 0:
        return None  # the readers name an empty file
    word = _DELIMITER_WORDS.get(delimiter or _DEFAULT_DELIMITER.get(fmt, ","), "delimited")
    what = _SIGNATURE.get(fmt, f"{word}-delimited text" if word != "delimited" else "delimited text")
    blocks = getattr(st, "st_blocks", None)
    # Allocated much less than its size: holes (a sparse or pre-allocated file) to look into.
    sparse = blocks is not None and size > 2**20 and blocks * 512 < size // 2
    text = fmt in TEXT_FORMATS
    gz = text and p.suffix.lower() == ".gz"
    samples = _samples(p, size, sparse, text and not gz)
    head = samples[0][1]
    kind = identify(head)
    if gz:
        if kind is None or kind[0] != "gzip":
            desc = kind[1] if kind else "not gzip-compressed"
            return (f"the name ends .gz but the file is {desc}; name it without .gz (or compress it with gzip)",
                    "a gzip-compressed text file")
        inner = _gzip_head(p)
        if inner is not None:
            ikind = identify(inner)
            if ikind is not None:
                return (f"the file is gzip-compressed {ikind[1]}, not {what}; {ikind[2]}", f"gzip-compressed {what}")
            if not _is_wide_encoding(encoding) and (_NUL_RUN in inner or _binary_share(inner) > 0.05):
                return (f"the decompressed file is binary data, not {what}; check the path", f"gzip-compressed {what}")
    elif kind is not None and kind[0] != fmt and not (fmt == "xlsx" and kind[0] == "zip"):
        return (f"the file is {kind[1]}, not {what} as its name or format says; {kind[2]}", what)
    elif fmt in ("parquet", "xlsx", "sav", "sas7bdat") and kind is None:
        # These formats always start with their signature: anything else cannot be read as such.
        looks = "text" if _binary_share(head) == 0 and b"\x00" not in head else "something else"
        fix = ('if it is delimited text, name it .csv (or .tab) or set format = "csv"' if looks == "text"
               else "check the path and the format")
        return (f"the file is not {what} (it does not start as one; it looks like {looks}); {fix}", what)
    if text and not gz:
        for offset, sample in samples:
            at = sample.find(_NUL_RUN)
            if at >= 0:
                where = "starts with" if offset + at == 0 else f"has, from byte {offset + at:,},"
                return (f"the file {where} a run of NUL bytes, which never occur in text: a sparse, pre-allocated "
                        "or damaged copy (an interrupted copy or download?); copy or download the file again", what)
        share = _binary_share(head)
        if share > 0.05 and len(head) - len(head.translate(None, _CONTROL)) >= 16:
            return (f"the file is binary data, not {what} ({share:.0%} of its first "
                    f"{_size_text(len(head))} are control bytes that text never holds); check the path and the format",
                    what)
    elif sparse:
        for offset, sample in samples[1:]:
            if sample and sample.count(0) == len(sample):
                return (f"the file holds only NUL bytes around byte {offset:,}: a sparse or pre-allocated copy "
                        "(an interrupted copy or download?); copy or download the file again", what)
    if max_bytes is not None and size > max_bytes:
        return (
            f"the file is {_size_text(size)}, more than the limit of {_size_text(max_bytes)} "
            f"([data] max_file_mb = {max_bytes / 2**20:g}); it was not read. Reading it needs about 3-4 times "
            "its size in memory: raise [data] max_file_mb if this machine has the memory, or split the file "
            '(e.g. by year); for several large AFCARS/NCANDS files, [data] engine = "duckdb" keeps one file '
            "in memory at a time",
            f"a file of at most {_size_text(max_bytes)}",
        )
    return None


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
    p: Path, raw: RawTable, delimiter: str, encoding: str, select: ColumnSelector | None, table: str | None,
    max_bytes: int | None = None,
) -> RawTable:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"config: unknown encoding {encoding!r} (for {raw.label})") from None
    data = _read_bytes(p)
    raw.sha256 = hashlib.sha256(data).hexdigest()
    if p.suffix.lower() == ".gz":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                # never more than the cap: a small .gz can decompress to many gigabytes
                data = gz.read(-1 if max_bytes is None else max_bytes + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raw.error(f"not a readable gzip file ({exc})", "a gzip-compressed text file", table=table)
            return raw
        if max_bytes is not None and len(data) > max_bytes:
            raw.error(
                f"the file decompresses to more than the limit of {_size_text(max_bytes)} "
                f"([data] max_file_mb = {max_bytes / 2**20:g}); it was not read: raise [data] max_file_mb "
                "if this machine has the memory (about 3-4 times the decompressed size), or split the file",
                f"a file of at most {_size_text(max_bytes)} decompressed",
                table=table,
            )
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
    sheets = ", ".join(map(repr, wb.sheetnames))
    section = f"[data.{table}]" if table else "the source's section of the config"
    try:
        if sheet is None:
            # Never a silent choice: with data on more than one sheet the config must name one.
            filled = [ws for ws in wb.worksheets if _has_cells(ws)]
            if len(filled) > 1:
                raw.error(
                    f"the workbook has {len(wb.sheetnames)} sheets ({sheets}) and {len(filled)} of them hold data; "
                    f"name the one to read with sheet = \"<name>\" in {section}, e.g. sheet = "
                    f"\"{_toml_escape(filled[0].title)}\"",
                    "a sheet named in the config (sheet = \"<name>\") when the workbook has several",
                    table=table,
                )
                wb.close()
                return raw
            ws = filled[0] if filled else wb.worksheets[0]
        elif isinstance(sheet, int):
            ws = wb.worksheets[sheet]
        else:
            ws = wb[sheet]
    except (IndexError, KeyError):
        raw.error(
            f"the workbook has no sheet {sheet!r}; its sheets are {sheets}: set sheet = \"<name>\" in {section} "
            "to one of them (or a 0-based sheet number)",
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


def _has_cells(ws: object, rows: int = 100) -> bool:
    """Whether a worksheet has any value in its first ``rows`` rows (a chart sheet has none)."""
    iter_rows = getattr(ws, "iter_rows", None)
    if iter_rows is None:
        return False
    for row in iter_rows(max_row=rows, values_only=True):
        if any(v is not None and not (isinstance(v, str) and not v.strip()) for v in row):
            return True
    return False


def _toml_escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


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
