"""The :class:`Evaluation`: every stage from a config, computed lazily and cached.

A notebook user holds one object and asks it for what they need; each stage runs the first
time it is asked for and is kept:

>>> ev = Evaluation.from_toml("data/synthetic/eval.toml")   # doctest: +SKIP
>>> ev.cohort.flow.to_frame()                               # doctest: +SKIP
>>> ev.balance.table                                        # doctest: +SKIP
>>> ev.effects_table()                                      # doctest: +SKIP
>>> ev.report("reports/eval")                               # doctest: +SKIP

The command line is a thin layer over this class. Library calls are quiet; pass
``progress=print`` (or any callable taking a message) to see each stage.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from .cohort import Cohort, build_cohort_from_config
from .config import Config
from .errors import ConfigError, DataError
from .extract import Extract
from .problems import ValidationReport

#: Outcomes estimated by default for each design when the config names none.
DEFAULT_OUTCOMES = {
    "in_care": {"reunification": [12, 24], "tpr": [24], "reentry": [12, 24], "permanency": [12]},
    "prevention": {"removal": [12], "recurrence": [12]},
}
#: Covariates read as categories even when numeric.
CATEGORICAL = ("entry_year", "county", "sex", "race_ethnicity", "placement_setting")


class Evaluation:
    """A whole evaluation: extract, cohort, propensity score, matching, balance, effects.

    Parameters
    ----------
    config : Config
        A validated configuration (:meth:`from_toml`, :meth:`from_dict`).
    extract : Extract, optional
        An extract already in memory (:meth:`from_frames`); otherwise loaded from the config.
    progress : callable, optional
        Called with a message as each stage starts (quiet by default).
    """

    def __init__(self, config: Config, extract: Extract | None = None, progress: Callable[[str], Any] | None = None):
        self.config = config
        self._extract = extract
        self._progress = progress
        self.notes: list[str] = []

    # construction -------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path, progress: Callable[[str], Any] | None = None) -> Evaluation:
        return cls(Config.from_toml(path), progress=progress)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: str | Path = ".", progress=None) -> Evaluation:
        return cls(Config.from_dict(raw, base_dir=base_dir), progress=progress)

    @classmethod
    def from_frames(
        cls,
        *,
        children: pd.DataFrame,
        episodes: pd.DataFrame | None = None,
        reports: pd.DataFrame | None = None,
        participation: pd.DataFrame | None = None,
        families: pd.DataFrame | None = None,
        extract_date: str,
        progress=None,
        **sections: dict[str, Any],
    ) -> Evaluation:
        """An evaluation of canonical DataFrames already in memory.

        ``sections`` are config sections (``cohort={...}``, ``matching={...}``, ...).
        """
        raw = {"data": {"extract_date": extract_date}, **sections}
        cfg = Config.from_dict(raw)
        tables = {"children": children, "episodes": episodes, "reports": reports, "participation": participation, "families": families}
        ext = Extract({k: v for k, v in tables.items() if v is not None}, extract_date, config=cfg)
        return cls(cfg, extract=ext, progress=progress)

    def _say(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    # stages -------------------------------------------------------------------------
    @cached_property
    def extract(self) -> Extract:
        if self._extract is None:
            from .load import load_extract

            self._say("loading the extract")
            self._extract = load_extract(self.config)
        return self._extract

    @cached_property
    def validation(self) -> ValidationReport:
        self._say("validating the extract")
        return self.extract.validate()

    def _require_valid(self) -> None:
        if self.validation.has_errors:
            raise DataError(
                f"the extract failed validation ({self.validation.summary()}); see Evaluation.validation",
                self.validation.errors,
            )

    @cached_property
    def outcomes(self) -> dict[str, list[int]]:
        named = {k: v.get("windows_months", []) for k, v in self.config["outcomes"].items()}
        if named:
            return named
        defaults = DEFAULT_OUTCOMES[self.config["cohort"]["design"]]
        self.notes.append(f"outcomes: none configured; used the defaults {defaults}")
        return defaults

    @cached_property
    def cohort(self) -> Cohort:
        self._require_valid()
        self._say("building the cohort and its outcomes")
        cfg = dict(self.config)
        cfg["outcomes"] = {k: {"windows_months": v} for k, v in self.outcomes.items()}
        cohort = build_cohort_from_config(self.extract, cfg)
        if cohort.n_treated == 0:
            raise DataError("no treated units in the cohort: check the participation roster and the entry window")
        return cohort

    @cached_property
    def covariates(self) -> list[str]:
        """Propensity covariates: the config's list, or the cohort's, less constant columns."""
        configured = self.config["propensity"]["covariates"]
        data = self.cohort.data
        if configured:
            missing = [c for c in configured if c not in data]
            if missing:
                raise ConfigError(f"propensity.covariates {missing} are not cohort columns; available: {', '.join(self.cohort.covariates)}")
            return list(configured)
        chosen = [c for c in self.cohort.covariates if data[c].nunique(dropna=False) > 1]
        dropped = sorted(set(self.cohort.covariates) - set(chosen))
        if dropped:
            self.notes.append(f"covariates constant in this cohort and left out of the propensity model: {', '.join(dropped)}")
        return chosen

    @cached_property
    def model_data(self) -> pd.DataFrame:
        """The cohort's rows with rare categories pooled so the propensity model can be fitted.

        A category seen in only one arm, or in fewer than 10 units, makes a logistic model's
        coefficient infinite (separation); such levels are pooled into "other" and the pooling
        is listed in :attr:`notes`.
        """
        df = self.cohort.data.copy()
        arm = df["treated"].astype(bool)
        for col in self.covariates:
            s = df[col]
            if not (col in CATEGORICAL or s.dtype == object or str(s.dtype) in ("string", "category")):
                continue
            key = s.astype("string").fillna("missing")
            by_arm = pd.crosstab(key, arm)
            for a in (True, False):
                if a not in by_arm:
                    by_arm[a] = 0
            rare = by_arm.index[(by_arm[True] == 0) | (by_arm[False] == 0) | (by_arm.sum(axis=1) < 10)]
            if len(rare) and len(rare) < len(by_arm):
                pooled = by_arm.loc[rare].sum()
                # pooled rare levels that are still rare join the most common level instead
                target = "other" if pooled.min() > 0 and pooled.sum() >= 10 else str(by_arm.sum(axis=1).idxmax())
                df[col] = key.where(~key.isin(rare), target)
                self.notes.append(f"{col}: {len(rare)} rare level(s) pooled into '{target}' for the propensity model")
        return df

    @cached_property
    def propensity_score(self):
        from .propensity import propensity

        p = self.config["propensity"]
        self._say(f"fitting the propensity model ({p['model']})")
        return propensity(
            self.model_data,
            treatment="treated",
            covariates=self.covariates,
            model=p["model"],
            categorical=[c for c in self.covariates if c in CATEGORICAL],
            common_support=p["common_support"],
            random_state=self.config["seed"],
        )

    def match(self, **overrides: Any):
        """Match with the config's settings (``overrides`` replace any of them; not cached)."""
        from .matching import match

        m = {**self.config["matching"], **overrides}
        cohort = self.cohort
        exact = list(m.get("exact") or [])
        missing = [c for c in exact if c not in cohort.data]
        if missing:
            raise ConfigError(f"matching.exact {missing} are not cohort columns")
        return match(
            self.propensity_score,
            ratio=m["ratio"],
            caliper_sd=m["caliper_sd"],
            replace=m["replace"],
            exact=exact or None,
            order=m["order"],
            method=m.get("method", "nearest"),
            # siblings are matched together when the unit is the child
            cluster="family_id" if cohort.unit == "child" else None,
            delay="index_delay_days",
            eligible_until="eligible_until_days",
            reindex=cohort.reindex,
            random_state=self.config["seed"],
        )

    @cached_property
    def matched(self):
        self._say("matching")
        return self.match()

    @cached_property
    def balance(self):
        from .balance import balance

        self._say("checking balance")
        return balance(self.matched, covariates=self.covariates)

    @cached_property
    def estimates(self) -> dict[str, Any]:
        """Outcome name -> :class:`~ppeval.estimate.EffectResults` on the matched sample."""
        from .estimate import estimate

        out = {}
        for name in self.outcomes:
            if f"{name}_status" not in self.matched.data:
                continue
            self._say(f"estimating effects on {name}")
            out[name] = estimate(self.matched, outcome=name)
        return out

    def effects_table(self) -> pd.DataFrame:
        """All effects of all outcomes in one tidy table."""
        frames = [res.to_frame() for res in self.estimates.values()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def report(self, out: str | Path, pdf: bool = False) -> Path:
        """Write the report, charts, tables and results.json into ``out`` (atomically)."""
        from .report import write_report

        return write_report(self, Path(out), pdf=pdf)

    # display ------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        parts = [f"<h3>{html.escape(self.config['title'])}</h3>"]
        try:
            parts.append(self.cohort.flow.to_frame().to_html(index=False))
            bal = self.balance
            parts.append(f"<p>Balance after matching: max |SMD| = {bal.max_abs_smd_after:.3f}</p>")
            parts.append(self.effects_table()[["outcome", "measure", "window_months", "estimate", "ci_low", "ci_high", "p_value"]].to_html(index=False, float_format=lambda v: f"{v:.3g}"))
        except Exception as exc:  # a dashboard shows what it can
            parts.append(f"<p><b>Not available:</b> {html.escape(str(exc))}</p>")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Evaluation({self.config['title']!r}, design={self.config['cohort']['design']}, unit={self.config['cohort']['unit']})"
