"""Validation problems and the report that lists them all.

A :class:`Problem` names the file, the row (line in the source file, header = line 1) and
the column, the offending value and what was expected. Values of identifying columns
(child, family and report ids, birth dates) are never repeated in a message: the file, row
and column locate them.

Examples
--------
>>> rep = ValidationReport([Problem("error", "episodes.csv", 3, "removal_date", "13/45/2020",
...                                 "a date (YYYY-MM-DD or MM/DD/YYYY)", "unparseable date")])
>>> rep.has_errors
True
>>> int(rep.to_frame().loc[0, "row"])
3
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    file: str
    row: int | None  # line in the source file (header is line 1); None for file-level problems
    column: str | None
    value: str | None
    expected: str
    message: str
    table: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column {self.column!r}"
        got = f" (found {self.value!r})" if self.value not in (None, "") else ""
        return f"{self.severity}: {where}: {self.message}{got}; expected {self.expected}"


class ValidationReport:
    """Every problem found in an extract, errors and warnings kept apart."""

    def __init__(self, problems: Iterable[Problem] = (), causes: Iterable[Problem] = ()):
        self.problems: list[Problem] = list(problems)
        #: rows with a problem that the configured analysis never uses (made warnings)
        self.outside_rows: int = 0
        #: root causes (a file missing, unreadable or refused), each with the problems that
        #: probably follow from it; see :func:`ppeval.validate.triage_lines`
        self.groups: list[tuple[Problem, list[Problem]]] = []
        causes = list(causes)
        if causes:
            from .validate import _triage

            self.groups = _triage(self.problems, causes)

    def ordered(self) -> list[Problem]:
        """Every problem, root causes first (each followed by its knock-on problems), then the rest."""
        seen: set[int] = set()
        out: list[Problem] = []
        for cause, knock_on in self.groups:
            for p in (cause, *knock_on):
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        out.extend(p for p in self.problems if id(p) not in seen)
        return out

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def has_errors(self) -> bool:
        return any(p.severity == ERROR for p in self.problems)

    @property
    def ok(self) -> bool:
        return not self.has_errors

    def to_frame(self) -> pd.DataFrame:
        cols = ["severity", "file", "row", "column", "value", "expected", "message", "table"]
        df = pd.DataFrame([asdict(p) for p in self.problems], columns=cols)
        df["row"] = df["row"].astype("Int64")
        return df

    def summary(self) -> str:
        return f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"

    def __str__(self) -> str:
        lines = [str(p) for p in self.problems]
        lines.append(self.summary())
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.problems)

    def _repr_html_(self) -> str:
        return f"<p><b>Validation:</b> {self.summary()}</p>" + self.to_frame().to_html(index=False)
