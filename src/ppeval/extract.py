"""The :class:`Extract`: the five canonical tables, the extract date and provenance.

Examples
--------
>>> import pandas as pd
>>> ext = Extract(
...     tables={"children": pd.DataFrame({"child_id": ["a"], "birth_date": pd.to_datetime(["2015-01-01"])}),
...             "episodes": pd.DataFrame({"child_id": ["a"], "removal_date": pd.to_datetime(["2020-01-01"])})},
...     extract_date="2023-12-31")
>>> ext.episodes.shape[0]
1
>>> int(ext.summary().loc["episodes", "rows"])
1
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from . import schema
from .problems import Problem, ValidationReport

if TYPE_CHECKING:
    from .config import Config


@dataclass(frozen=True)
class InputFile:
    """One input read into the extract: where it came from and its sha256."""

    path: str
    sha256: str
    table: str
    rows: int
    format: str

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "table": self.table, "rows": self.rows, "format": self.format}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks (inputs may be several GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class Extract:
    """An agency extract in the canonical layout.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Any of ``children``, ``episodes``, ``reports``, ``participation``, ``families``.
        Missing tables are empty. Each table may carry ``_source_file`` and ``_source_row``
        columns naming where each row came from (validation uses them).
    extract_date : date or str
        The date the data were pulled: spells still open then are censored there.
    inputs : list of InputFile
        Provenance of every file read.
    load_problems : list of Problem
        Problems found while reading (unparseable values, empty files, ...).
    config : Config, optional
        The configuration the extract was loaded from.
    """

    def __init__(
        self,
        tables: dict[str, pd.DataFrame],
        extract_date: date | str | pd.Timestamp,
        inputs: list[InputFile] | None = None,
        load_problems: list[Problem] | None = None,
        config: Config | None = None,
    ):
        unknown = set(tables) - set(schema.TABLES)
        if unknown:
            raise ValueError(f"unknown table(s) {sorted(unknown)}; canonical tables are {list(schema.TABLE_ORDER)}")
        self.tables: dict[str, pd.DataFrame] = {
            name: tables[name] if tables.get(name) is not None else schema.empty_table(name)
            for name in schema.TABLE_ORDER
        }
        self.extract_date = pd.Timestamp(extract_date).normalize()
        self.inputs: list[InputFile] = list(inputs or [])
        self.load_problems: list[Problem] = list(load_problems or [])
        self.config = config

    # the five tables, by name
    @property
    def children(self) -> pd.DataFrame:
        return self.tables["children"]

    @property
    def episodes(self) -> pd.DataFrame:
        return self.tables["episodes"]

    @property
    def reports(self) -> pd.DataFrame:
        return self.tables["reports"]

    @property
    def participation(self) -> pd.DataFrame:
        return self.tables["participation"]

    @property
    def families(self) -> pd.DataFrame:
        return self.tables["families"]

    def validate(self) -> ValidationReport:
        """Check the extract and list every problem (see :func:`ppeval.validate.validate_extract`)."""
        from .validate import validate_extract

        return validate_extract(self)

    def summary(self) -> pd.DataFrame:
        """Rows and columns per table (no unit-level data)."""
        rows = {
            name: {"rows": len(df), "columns": len([c for c in df.columns if not c.startswith("_")])}
            for name, df in self.tables.items()
        }
        return pd.DataFrame.from_dict(rows, orient="index")

    def provenance(self) -> list[dict]:
        """Each input's path, sha256, table, row count and format."""
        return [f.to_dict() for f in self.inputs]

    def canonical(self, name: str) -> pd.DataFrame:
        """A table without the source bookkeeping columns."""
        df = self.tables[name]
        return df[[c for c in df.columns if c not in (schema.SOURCE_FILE, schema.SOURCE_ROW)]]

    def __repr__(self) -> str:
        # families: distinct families (the crosswalk has one row per child, not per family)
        counts = ", ".join(f"{k}={self._count(k)}" for k in self.tables)
        return f"Extract(extract_date={self.extract_date.date()}, {counts})"

    def _count(self, name: str) -> int:
        """What the repr shows for a table: its rows, or for ``families`` the distinct families."""
        df = self.tables[name]
        if name == "families" and "family_id" in df.columns:
            return int(df["family_id"].nunique(dropna=True))
        return len(df)

    def _repr_html_(self) -> str:
        return (
            f"<p><b>Extract</b> as of {self.extract_date.date()}, {len(self.inputs)} input file(s)</p>"
            + self.summary().to_html()
        )
