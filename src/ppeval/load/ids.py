"""Identifier normalisation: the ``[data] id_normalise`` option and the hints that suggest it.

Ids link the tables: a crosswalk row or a roster row whose id matches nothing leaves a
served child in the comparison pool. The usual causes are mechanical, and each has a rule:

``"whitespace"``
    leading and trailing spaces and tabs are removed (``" F12 "`` -> ``"F12"``);
``"case"``
    letters are upper-cased (``"f12"`` -> ``"F12"``);
``"leading_zeros"``
    an id made only of digits loses its leading zeros (``"0000176784"`` -> ``"176784"``),
    as a spreadsheet does when it reads ids as numbers; ids with letters are unchanged.

Nothing is normalised unless the config asks for it: two ids that differ only by leading
zeros may be two different children in some systems. :func:`normalise_ids` applies the
rules to every id column of every table, on both sides of every link, and
:func:`explain_mismatch` tells validation which rules would make an unmatched id match.

Examples
--------
>>> import pandas as pd
>>> key(pd.Series([" 007", "C01", "c01"]), ("whitespace", "leading_zeros", "case")).tolist()
['7', 'C01', 'C01']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import schema
from ..errors import ConfigError

#: The rules of ``[data] id_normalise``, in the order they are applied.
RULES: tuple[str, ...] = ("whitespace", "case", "leading_zeros")

_WHAT = {
    "whitespace": "spaces around it are removed",
    "case": "upper and lower case are not told apart",
    "leading_zeros": "leading zeros are ignored (a spreadsheet may have stripped or added them)",
}


def check_rules(rules: object) -> tuple[str, ...]:
    """The rules of ``[data] id_normalise``, validated (a list of :data:`RULES` names).

    >>> check_rules(["leading_zeros"])
    ('leading_zeros',)
    """
    if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) for r in rules):
        raise ConfigError(f"config: data.id_normalise = {rules!r} must be a list of rule names from {list(RULES)}")
    bad = [r for r in rules if r not in RULES]
    if bad:
        raise ConfigError(f"config: data.id_normalise has unknown rule(s) {bad}; choose from {list(RULES)}")
    return tuple(r for r in RULES if r in rules)


def key(ids: pd.Series, rules: Sequence[str] = RULES) -> pd.Series:
    """Ids as strings under the normalisation ``rules`` (missing ids stay missing)."""
    s = ids.astype("string")
    if "whitespace" in rules:
        s = s.str.strip()
    if "case" in rules:
        s = s.str.upper()
    if "leading_zeros" in rules:
        digits = s.str.isdigit().fillna(False).to_numpy(dtype=bool)
        if digits.any():
            stripped = s[digits].str.lstrip("0")
            s = s.copy()
            s[digits] = stripped.mask(stripped == "", "0")
    return s


def id_columns(table: str) -> list[str]:
    """The canonical id columns of ``table`` (child, family and report ids)."""
    spec = schema.TABLES.get(table)
    return [c.name for c in spec.columns if c.kind == "id"] if spec is not None else []


def normalise_ids(tables: Mapping[str, pd.DataFrame], rules: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Every table with its id columns normalised by ``rules`` (new frames; inputs untouched).

    >>> t = {"families": pd.DataFrame({"child_id": ["0012"], "family_id": [" f1"]})}
    >>> normalise_ids(t, ["leading_zeros", "whitespace", "case"])["families"].values.tolist()
    [['12', 'F1']]
    """
    rules = check_rules(list(rules))
    if not rules:
        return dict(tables)
    out = {}
    for name, df in tables.items():
        cols = [c for c in id_columns(name) if c in df.columns]
        if cols:
            df = df.copy()
            df.attrs = dict(df.attrs)
            for c in cols:
                df[c] = key(df[c], rules)
        out[name] = df
    return out


def explain_mismatch(unmatched: pd.Series, targets: pd.Series) -> list[str | None]:
    """For each unmatched id, the rules under which it would match one of ``targets``.

    Returns a hint per id (``None`` when no rule explains the mismatch). The hint never
    repeats the id. Only the unmatched ids are looped over; the targets are normalised once
    per rule combination that is tried.

    >>> explain_mismatch(pd.Series(["176784", "X9", "f1 "]), pd.Series(["0000176784", "F1"]))[0]
    'it matches an id there once leading zeros are ignored (a spreadsheet may have stripped or added them)'
    >>> explain_mismatch(pd.Series(["X9"]), pd.Series(["0000176784"]))
    [None]
    """
    hints: list[str | None] = [None] * len(unmatched)
    if not len(unmatched) or not len(targets):
        return hints
    u = unmatched.reset_index(drop=True)
    open_ = np.ones(len(u), dtype=bool)
    # the fewest rules first, so that the hint names only what is needed
    combos = [(r,) for r in RULES] + [(a, b) for i, a in enumerate(RULES) for b in RULES[i + 1:]] + [RULES]
    # only targets equal to an unmatched id under every rule can match it under some rules:
    # normalise the whole target column once, the rule combinations on those few only
    tgt = targets.dropna()
    tgt = tgt[key(tgt).isin(pd.Index(key(u).dropna().unique())).fillna(False).to_numpy(dtype=bool)]
    if not len(tgt):
        return hints
    for combo in combos:
        if not open_.any():
            break
        known = pd.Index(key(tgt, combo).dropna().unique())
        hit = open_ & key(u, combo).isin(known).fillna(False).to_numpy(dtype=bool)
        text = "it matches an id there once " + " and ".join(_WHAT[r] for r in combo)
        for i in np.flatnonzero(hit):
            hints[i] = text
        open_ &= ~hit
    return hints


def fix_hint(hint: str) -> str:
    """The sentence that tells the user how to act on an :func:`explain_mismatch` hint."""
    rules = [r for r in RULES if _WHAT[r] in hint]
    listed = ", ".join(f'"{r}"' for r in rules)
    return f"{hint}: correct the file, or set [data] id_normalise = [{listed}] to compare ids that way"
