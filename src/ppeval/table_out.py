"""Unit-level and summary tables written in the format their file name says.

``ppeval cohort --out`` and ``ppeval indicators --out`` take a file name; its suffix decides
the format: ``.csv`` (UTF-8 text, dates as ``YYYY-MM-DD``), ``.parquet`` (Apache Parquet,
needs pyarrow) or ``.xlsx`` (an Excel workbook with one sheet, needs openpyxl). Any other
suffix is refused before anything is loaded (exit status 2), so a file called ``coh.xlsx``
never holds CSV text. Every file is written whole or not at all
(:func:`ppeval.privacy.write_bytes_atomic`).

Examples
--------
>>> import tempfile, pathlib, pandas as pd
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> check_table_path(d / "t.txt")
Traceback (most recent call last):
...
ppeval.errors.ConfigError: cannot write t.txt: the file name must end in .csv, .parquet or .xlsx (the suffix says the format)
>>> _ = write_table(d / "t.csv", pd.DataFrame({"a": [1, 2]}))
>>> (d / "t.csv").read_text()
'a\\n1\\n2\\n'
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pandas as pd

from .errors import ConfigError

#: The suffixes accepted for an output table, and the format each one means.
TABLE_FORMATS: dict[str, str] = {".csv": "csv", ".parquet": "parquet", ".xlsx": "xlsx"}
#: The most data rows an Excel worksheet holds (1,048,576 rows including the header).
EXCEL_MAX_ROWS = 1_048_575
_NEEDS = {"parquet": "pyarrow", "xlsx": "openpyxl"}


def check_table_path(path: str | Path) -> str:
    """The format an output file name asks for; :class:`~ppeval.errors.ConfigError` otherwise.

    Called before any work, so that a wrong name costs nothing. Also refuses a format whose
    writer is not installed.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    str
        ``"csv"``, ``"parquet"`` or ``"xlsx"``.
    """
    path = Path(path)
    fmt = TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        allowed = ", ".join(list(TABLE_FORMATS)[:-1]) + " or " + list(TABLE_FORMATS)[-1]
        raise ConfigError(f"cannot write {path.name}: the file name must end in {allowed} (the suffix says the format)")
    module = _NEEDS.get(fmt)
    if module and importlib.util.find_spec(module) is None:
        raise ConfigError(f"cannot write {path.name}: .{fmt} files need the {module} package (pip install {module}), "
                          "or choose a .csv file name")
    return fmt


def table_bytes(data: pd.DataFrame, fmt: str, *, float_format: str | None = None) -> bytes:
    """``data`` encoded as ``fmt`` (see :data:`TABLE_FORMATS`); ``float_format`` for CSV text only.

    Examples
    --------
    >>> table_bytes(pd.DataFrame({"d": pd.to_datetime(["2020-01-02"])}), "csv")
    b'd\\n2020-01-02\\n'
    """
    if fmt == "csv":
        return data.to_csv(index=False, date_format="%Y-%m-%d", lineterminator="\n",
                           float_format=float_format).encode("utf-8")
    buf = io.BytesIO()
    if fmt == "parquet":
        data.to_parquet(buf, index=False)
    elif fmt == "xlsx":
        if len(data) > EXCEL_MAX_ROWS:
            raise ConfigError(f"an Excel sheet holds at most {EXCEL_MAX_ROWS:,} rows; this table has {len(data):,}: "
                              "choose a .csv or .parquet file name")
        # openpyxl cannot store pandas' NA: missing values become empty cells. Dates become
        # datetime.date values, which openpyxl stores as date cells shown YYYY-MM-DD (as in the CSV)
        plain = pd.DataFrame(index=data.index)
        for c in data.columns:
            s = data[c]
            if pd.api.types.is_datetime64_any_dtype(s):
                s = s.dt.date
            plain[c] = s.astype(object).where(s.notna(), None)
        with pd.ExcelWriter(buf, engine="openpyxl") as xl:
            plain.to_excel(xl, index=False, sheet_name="data")
    else:
        raise ConfigError(f"unknown table format {fmt!r}")
    return buf.getvalue()


def write_table(path: str | Path, data: pd.DataFrame, *, float_format: str | None = None) -> Path:
    """Write ``data`` to ``path`` in the format its suffix names, atomically.

    Parameters
    ----------
    path : str or Path
    data : DataFrame
    float_format : str, optional
        printf format of floats in CSV text (binary formats keep full precision).

    Returns
    -------
    Path
    """
    from .privacy import write_bytes_atomic

    fmt = check_table_path(path)
    return write_bytes_atomic(Path(path), table_bytes(data, fmt, float_format=float_format))
