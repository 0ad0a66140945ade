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

For the in-care design the Iowa-style outcome table needs re-entry within 12 and 24 months
and the days in care within 12 months; when the config leaves them out they are added
(and listed in :attr:`Evaluation.defaults_applied`, which the report prints).
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .cohort import Cohort, build_cohort_from_config
from .config import Config
from .errors import ConfigError, ConvergenceError, DataError
from .extract import Extract
from .load.ids import normalise_ids
from .problems import ValidationReport

#: Outcomes estimated by default for each design when the config names none.
DEFAULT_OUTCOMES = {
    "in_care": {"reunification": [12, 24], "tpr": [24], "reentry": [12, 24], "permanency": [12]},
    "prevention": {"removal": [12], "recurrence": [12]},
}
#: Outcomes (and windows) the in-care report's Iowa-style table needs, added when missing.
IOWA_TABLE = {"reentry": [12, 24], "time_in_care": [12]}
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
        #: Things the reader should know (pooled categories, dropped covariates, ...).
        self.notes: list[str] = []
        #: Notes that quote levels of one non-id column (and from the data nothing else but
        #: a number of levels), by that column (``{"county": ["county: 2 rare level(s)
        #: pooled into '19153' ..."]}``): the report's identifier guard takes a county code
        #: in such a note for the county's, not for an id (IdentifierGuard.with_provenance).
        self.note_labels: dict[str, list[str]] = {}
        #: Defaults the evaluation applied beyond the config's own (``key = value`` texts).
        self.defaults_applied: list[str] = []

    # construction -------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path, progress: Callable[[str], Any] | None = None) -> Evaluation:
        """An evaluation of the config file at ``path`` (validated now; data loaded lazily).

        Examples
        --------
        >>> ev = Evaluation.from_toml("reports/demo/data/eval.toml")   # doctest: +SKIP
        >>> ev.cohort.n_treated                                        # doctest: +SKIP
        187
        """
        return cls(Config.from_toml(path), progress=progress)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: str | Path = ".", progress: Callable[[str], Any] | None = None) -> Evaluation:
        """An evaluation of a config given as a dict (paths relative to ``base_dir``).

        Examples
        --------
        >>> ev = Evaluation.from_dict({"data": {"extract_date": "2023-12-31"}})
        >>> ev.config["matching"]["caliper_sd"]
        0.2
        """
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
        progress: Callable[[str], Any] | None = None,
        **sections: Any,
    ) -> Evaluation:
        """An evaluation of canonical DataFrames already in memory.

        The frames use the canonical columns (:mod:`ppeval.schema`); ``sections`` are
        config sections or top-level keys (``cohort={...}``, ``matching={...}``,
        ``title="..."``, ``seed=1``). Nothing is read from disk, so the report's provenance
        lists no input files.

        Examples
        --------
        >>> from ppeval.synthetic import generate            # doctest: +SKIP
        >>> t = load_extract("eval_canonical.toml").tables   # doctest: +SKIP
        >>> ev = Evaluation.from_frames(children=t["children"], episodes=t["episodes"],
        ...     participation=t["participation"], families=t["families"],
        ...     extract_date="2023-12-31", cohort={"entry_from": "2016-01-01"})  # doctest: +SKIP
        """
        raw = {"data": {"extract_date": extract_date}, **sections}
        cfg = Config.from_dict(raw)
        tables = {"children": children, "episodes": episodes, "reports": reports, "participation": participation, "families": families}
        given = {k: v for k, v in tables.items() if v is not None}
        ext = Extract(normalise_ids(given, cfg["data"].get("id_normalise") or ()), extract_date, config=cfg)
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
        ext = self.extract  # loaded (and announced) before validation is announced
        self._say("validating the extract")
        return ext.validate()

    def _require_valid(self) -> None:
        if self.validation.has_errors:
            raise DataError(
                f"the extract failed validation ({self.validation.summary()}); see Evaluation.validation",
                # root causes first (a file missing or refused), then what follows from them
                [p for p in self.validation.ordered() if p.severity == "error"],
            )

    @cached_property
    def outcomes(self) -> dict[str, list[int]]:
        """Outcome name -> window months: the config's, or the design's defaults.

        For the in-care design the Iowa-style table's outcomes (re-entry within 12 and 24
        months, days in care within 12 months) are added when missing; each addition is
        listed in :attr:`defaults_applied`.
        """
        named = {k: list(v.get("windows_months", [])) for k, v in self.config["outcomes"].items()}
        design = self.config["cohort"]["design"]
        if not named:
            named = {k: list(v) for k, v in DEFAULT_OUTCOMES[design].items()}
            self.defaults_applied.append(f"outcomes = {named} (none configured: the {design} design's defaults)")
        if design == "in_care":
            for name, months in IOWA_TABLE.items():
                have = named.setdefault(name, [])
                missing = [m for m in months if m not in have]
                if missing:
                    have.extend(missing)
                    have.sort()
                    self.defaults_applied.append(f"outcomes.{name}.windows_months += {missing} (the Iowa-style outcome table)")
        return named

    @cached_property
    def cohort(self) -> Cohort:
        self._require_valid()
        self._say("building the cohort and its outcomes")
        cfg = dict(self.config)
        cfg["outcomes"] = {k: {"windows_months": v} for k, v in self.outcomes.items()}
        cohort = build_cohort_from_config(self.extract, cfg)
        # rows with a validation problem that the analysis never uses (warnings, not errors)
        cohort.flow.outside_rows = self.validation.outside_rows
        if cohort.n_treated == 0:
            raise DataError("no treated units in the cohort: check the participation roster and the entry window")
        return cohort

    @cached_property
    def requested_covariates(self) -> list[str]:
        """Covariates offered to the propensity model: the config's list, or the cohort's.

        The default list leaves out yes/no covariates that separate the arms (seen in one arm
        only or in fewer than 10 units) and numeric ones constant in one arm, with a note.
        Covariates constant in the whole cohort are left out by the propensity stage itself
        (one rule for every design and unit; see :attr:`covariates`).
        """
        configured = self.config["propensity"]["covariates"]
        data = self.cohort.data
        if configured:
            return self._cohort_columns("propensity.covariates", list(configured))
        chosen = [c for c in self.cohort.covariates if c in data]
        # a yes/no covariate seen in one arm only (or in a handful of units) separates the arms
        # and the logistic model has no finite fit: the default list leaves it out
        arm = data["treated"].astype(bool)
        rare = []
        for c in chosen:
            s = data[c]
            if s.nunique(dropna=False) <= 1:
                continue  # constant everywhere: the propensity stage leaves it out with its note
            if c not in CATEGORICAL and pd.api.types.is_numeric_dtype(s) and (s[arm].nunique() <= 1 or s[~arm].nunique() <= 1):
                rare.append(c)  # constant in one arm: any other value predicts the other arm
                continue
            if s.dropna().isin([0, 1, True, False]).all() and s.nunique(dropna=True) == 2:
                yes = s.fillna(False).astype(bool)
                if (yes & arm).sum() == 0 or (yes & ~arm).sum() == 0 or yes.sum() < 10 or (~yes).sum() < 10:
                    rare.append(c)
        if rare:
            self.notes.append(f"covariates left out of the propensity model because they separate the arms (constant in one arm, or a yes/no seen in one arm or in fewer than 10 units): {', '.join(rare)}")
            chosen = [c for c in chosen if c not in rare]
        return chosen

    def _cohort_columns(self, key: str, names: list[str]) -> list[str]:
        """Config covariates as cohort columns: a family unit's child-level names become the
        family-level ones, with a note; names the cohort lacks are an error.

        A family cohort carries the youngest child's age (``youngest_age_at_removal``) and
        the number of children (``children_in_care``) instead of the child's age and
        siblings in care, so a config written for the child unit runs unchanged and says
        which family-level covariate it used.
        """
        from .cohort import FAMILY_SIZE, family_covariate_name

        data = self.cohort.data
        if self.cohort.unit == "family":
            family = {c: (FAMILY_SIZE[self.cohort.design] if c == "siblings_in_care" else family_covariate_name(c))
                      for c in names if c not in data}
            family = {c: f for c, f in family.items() if f != c and f in data}
            if family:
                said = "; ".join(f"{c} is a child-level covariate; for unit = family {f} was used" for c, f in family.items())
                note = f"{key}: {said} (write the family-level name in the config to say so)"
                applied = f"{key}: " + ", ".join(f"{c} -> {f}" for c, f in family.items()) + " (unit = family)"
                if note not in self.notes:  # match() is not cached: say it once
                    self.notes.append(note)
                    self.defaults_applied.append(applied)
                names = list(dict.fromkeys(family.get(c, c) for c in names))
        missing = [c for c in names if c not in data]
        if missing:
            listed = ", ".join(repr(c) for c in missing)
            raise ConfigError(f"{key} {listed} are not cohort columns; available: {', '.join(self.cohort.covariates)}")
        return names

    @property
    def covariates(self) -> list[str]:
        """The covariates of the propensity model: :attr:`requested_covariates` less those
        constant in this cohort (left out by :func:`ppeval.propensity`, with a note)."""
        return list(self.propensity_score.covariates)

    @cached_property
    def model_data(self) -> pd.DataFrame:
        """The cohort's rows with rare categories pooled so the propensity model can be fitted.

        A category seen in only one arm, or in fewer than 10 units, makes a logistic model's
        coefficient infinite (separation); such levels are pooled into "other" and the pooling
        is listed in :attr:`notes`.
        """
        df = self.cohort.data.copy()
        arm = df["treated"].astype(bool)
        for col in self.requested_covariates:
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
                if pd.api.types.is_numeric_dtype(s):
                    target = str(by_arm.sum(axis=1).idxmax())
                    # a numeric column (entry year) stays numeric: exact matching of siblings
                    # removed in different years takes the family's first year
                    df[col] = s.where(~key.isin(rare), s[key == target].iloc[0])
                else:
                    df[col] = key.where(~key.isin(rare), target)
                note = f"{col}: {len(rare)} rare level(s) pooled into '{target}' for the propensity model"
                self.notes.append(note)
                self.note_labels.setdefault(col, []).append(note)
        return df

    @cached_property
    def propensity_score(self):
        from .propensity import propensity

        p = self.config["propensity"]
        data = self.model_data  # earlier stages announce themselves first
        self._say(f"fitting the propensity model ({p['model']})")
        requested = self.requested_covariates
        ps = propensity(
            data,
            treatment="treated",
            covariates=requested,
            model=p["model"],
            categorical=[c for c in requested if c in CATEGORICAL],
            common_support=p["common_support"],
            random_state=self.config["seed"],
            separation=p["separation"],
            constant="drop",
        )
        self.notes.extend(ps.notes_)
        return ps

    def match(self, **overrides: Any):
        """Match with the config's settings (``overrides`` replace any of them; not cached)."""
        from .matching import match

        m = {**self.config["matching"], **overrides}
        cohort = self.cohort
        exact = self._cohort_columns("matching.exact", list(m.get("exact") or []))
        return match(
            self.propensity_score,
            ratio=m["ratio"],
            caliper_sd=m["caliper_sd"],
            replace=m["replace"],
            exact=exact or None,
            order=m["order"],
            method=m.get("method", "nearest"),
            # siblings are matched together when the unit is the child; a served unit's
            # "before enrolment" comparison row (risk-set design) is a family of its own
            cluster=("match_family" if "match_family" in cohort.data else "family_id") if cohort.unit == "child" else None,
            # the enrolment-delay rule is part of nearest-neighbour matching; exact, CEM and
            # IPW compare units at their own start
            **({"delay": "index_delay_days", "eligible_until": "eligible_until_days", "reindex": cohort.reindex}
               if m.get("method", "nearest") == "nearest" else {}),
            random_state=self.config["seed"],
        )

    @cached_property
    def matched(self):
        ps = self.propensity_score  # fitted (and announced) before matching is announced
        self._say("matching")
        return self.match() if ps is not None else None

    @cached_property
    def balance(self):
        from .balance import balance

        matched = self.matched
        self._say("checking balance")
        # the verdict is drawn on MatchIt's convention: binary covariates standardized too
        return balance(matched, covariates=self.covariates, binary="std")

    @cached_property
    def estimates(self) -> dict[str, Any]:
        """Outcome name -> :class:`~ppeval.estimate.EffectResults` on the matched sample.

        An outcome whose model cannot be fitted (an arm without events, a model that does
        not converge) is kept with ``estimable = False`` and its ``reason``; its effects
        carry NaN, and the other outcomes are estimated as usual.
        """
        from .estimate import OUTCOME_WORDS, Effect, EffectResults, estimate

        out = {}
        matched = self.matched
        for name, months in self.outcomes.items():
            if f"{name}_status" not in matched.data:
                continue
            self._say(f"estimating effects on {name}")
            kwargs: dict[str, Any] = {}
            if name == "time_in_care":
                # days in care are not a binary window: the hazard of leaving care and the
                # restricted mean time in care up to the longest window; means by arm are in
                # days_in_care()
                kwargs = {"windows": [], "horizon": float(max(months or [12]) * 365 // 12)}
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    out[name] = estimate(self.matched, outcome=name, **kwargs)
                except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError, DataError,
                        ConvergenceError) as exc:
                    # one outcome that cannot be estimated (too few events, a model that does
                    # not converge) must not cost the whole report: it is kept as not
                    # estimable, with the outcome named and why (estimate() itself already
                    # turns an arm without events into that; this is for the rest). Its
                    # window rates are estimated on their own, as estimate() does them.
                    label = OUTCOME_WORDS.get(name, (name,))[0]
                    hr = Effect.not_estimable("hazard_ratio", str(exc), method="Cox proportional hazards model", outcome=name)
                    out[name] = EffectResults(name, [hr, *self._window_effects(name, kwargs.get("windows"))],
                                              reason=f"{label}: not estimable — {exc}")
            # a library call stays quiet: numerical warnings become notes in the report
            for msg in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
                self.notes.append(f"{name}: {msg}")
        return out

    def _window_effects(self, name: str, windows: list[int] | None) -> list:
        """The window effects of outcome ``name`` (each window a 0/1 outcome, as
        :func:`~ppeval.estimate.estimate` does them), for an outcome whose time-to-event
        model failed; a window that fails too is left out (its row says not estimable)."""
        from .estimate import estimate
        from .estimate._data import window_columns

        effects = []
        for months, col in window_columns(self.matched.data, name).items():
            if windows is not None and months not in windows:
                continue
            try:
                effects += estimate(self.matched, binary=col).effects
            except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError, DataError, ConvergenceError):
                continue
        return effects

    @cached_property
    def days_in_care(self) -> pd.DataFrame:
        """Mean days in out-of-home care within each window, by arm, with the difference.

        Units whose whole window lies before the extract date count; means are weighted
        by the matching weights and the difference has a cluster-robust SE (by matched set;
        by matched unit with replacement) from a weighted least-squares fit, as the binary
        effects: :func:`~ppeval.estimate.estimate` with ``continuous=``. Empty when the
        outcome was not computed.

        Returns
        -------
        DataFrame
            window_months, n_treated, n_comparison, mean_treated, mean_comparison,
            difference, ci_low, ci_high, p_value, method.
        """
        from .estimate import estimate
        from .outcomes import window_column

        rows = []
        for months in self.outcomes.get("time_in_care", []):
            col = window_column("time_in_care", months)
            if col not in self.matched.data:
                continue
            # estimated in the effects stage, as every other effect: the matched sample's
            # weights and clusters (matched sets; matched units with replacement), comparison
            # units followed until their own enrolment weighted as the window rates are
            try:
                e = estimate(self.matched, continuous=col)["mean_difference"]
            except DataError:  # fewer than two units with a whole window in an arm
                continue
            rows.append({
                "window_months": months, "n_treated": e.n_treated, "n_comparison": e.n_comparison,
                "mean_treated": e.extra["mean_treated"], "mean_comparison": e.extra["mean_comparison"],
                "difference": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value,
                "method": e.method,
            })
        return pd.DataFrame(rows, columns=["window_months", "n_treated", "n_comparison", "mean_treated", "mean_comparison",
                                           "difference", "ci_low", "ci_high", "p_value", "method"])

    def effects_table(self) -> pd.DataFrame:
        """All effects of all outcomes in one tidy table."""
        frames = [res.to_frame() for res in self.estimates.values()]
        if not frames:
            return pd.DataFrame()
        with warnings.catch_warnings():
            # all-NA columns (no window for hazard ratios) keep their dtype: pandas warns
            # about a future change that does not affect this table
            warnings.simplefilter("ignore", FutureWarning)
            return pd.concat(frames, ignore_index=True)

    def report(self, out: str | Path, pdf: bool = False) -> Path:
        """Write the report, charts, tables and results.json into ``out`` (atomically)."""
        from .report import write_report

        return write_report(self, Path(out), pdf=pdf)

    # display ------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """A compact dashboard: sample flow, balance verdict and headline effects.

        Shows what has been computed so far and computes what is missing (a notebook cell
        that displays the evaluation runs it). A stage that fails shows its message in
        place of its panel. Unit-level data are never shown; counts are as computed (the
        published report is where small cells are suppressed).
        """
        title = html.escape(self.config["title"])
        c = self.config["cohort"]
        parts = [f"<div class='ppeval-dashboard'><h3>{title}</h3>",
                 f"<p>{html.escape(c['design'])} design, unit: {html.escape(c['unit'])}; "
                 f"entries {html.escape(str(c['entry_from'] or '…'))} to {html.escape(str(c['entry_to'] or '…'))}</p>"]
        try:
            flow = self.cohort.flow.to_frame()
            flow = flow[flow["kind"] == "step"][["step", "treated", "comparison"]]
            parts.append("<h4>Sample flow</h4>" + flow.to_html(index=False))
            counts = self.matched.counts
            parts.append(f"<p>Matched: {counts.get('treated_matched')} treated, {counts.get('comparison_matched')} comparison "
                         f"({counts.get('treated_unmatched')} treated unmatched).</p>")
            bal = self.balance
            verdict = "balanced" if bal.passed else "NOT balanced"
            colour = "#007a4d" if bal.passed else "#b03a00"
            parts.append(f"<h4>Balance</h4><p style='color:{colour}'><b>{verdict}</b>: max |SMD| {bal.max_abs_smd_before:.3f} before, "
                         f"{bal.max_abs_smd_after:.3f} after matching (binary covariates standardized, as MatchIt's "
                         f"summary()).</p><p>{html.escape(bal.explain())}</p>")
            eff = self.effects_table()
            if not eff.empty:
                # an outcome with nothing fitted has one row without a measure: shown with its reason
                head = eff[eff["measure"].isin(["hazard_ratio", "risk_difference"]) | eff["measure"].isna()]
                cols = ["outcome", "measure", "window_months", "estimate", "ci_low", "ci_high", "p_value"]
                if head["reason"].notna().any():
                    cols.append("reason")
                parts.append("<h4>Headline effects</h4>" + head[cols].to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep=""))
        except Exception as exc:  # a dashboard shows what it can, and why the rest is missing
            parts.append(f"<p><b>Not available:</b> {html.escape(str(exc))}</p>")
        return "".join(parts) + "</div>"

    def __repr__(self) -> str:
        return f"Evaluation({self.config['title']!r}, design={self.config['cohort']['design']}, unit={self.config['cohort']['unit']})"
