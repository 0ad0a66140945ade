"""Configuration: a TOML file, validated on load.

Unknown keys are errors with a "did you mean" suggestion, relative paths are resolved
against the config file's folder, and every default that was applied is recorded in
:attr:`Config.defaults_applied` so the report can print it. A config is data only: it can
never execute code.

Examples
--------
>>> cfg = Config.from_dict({"data": {"extract_date": "2023-12-31"}}, base_dir=".")
>>> cfg["cohort"]["design"]
'in_care'
>>> Config.from_dict({"cohrt": {}}, base_dir=".")
Traceback (most recent call last):
...
ppeval.errors.ConfigError: config: unknown key 'cohrt'; did you mean 'cohort'?
"""

from __future__ import annotations

import codecs
import copy
import difflib
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError

# A spec is a dict of key -> either a nested spec (dict) or a tuple (types, default).
# REQUIRED marks a key without a default; ANY_KEYS marks a table with free-form keys.
REQUIRED = object()
ANY_KEYS = "*"

_SOURCE_SPEC: dict[str, Any] = {
    "path": ((str,), None),
    "paths": ((list,), None),
    "format": ((str,), None),
    "delimiter": ((str,), None),
    "encoding": ((str,), "utf-8"),
    "sheet": ((str, int), None),
    "date_format": ((str,), None),
    "columns": ((dict,), {}),
    "codes": ((dict,), {}),
    "url": ((str,), None),
    "query": ((str,), None),
    "params": ((dict,), {}),
}

_PRESET_SPEC: dict[str, Any] = {
    "paths": ((list,), REQUIRED),
    "encoding": ((str,), "utf-8"),
    "delimiter": ((str,), None),
    "columns": ((dict,), {}),
}

#: Default of ``[data] max_file_mb``: a file larger than this many megabytes (2**20 bytes) is
#: refused before it is read (reading needs about 3-4 times a file's size in memory).
DEFAULT_MAX_FILE_MB = 20_000

SPEC: dict[str, Any] = {
    "title": ((str,), "Parent partner program evaluation"),
    "seed": ((int,), 20240601),
    "data": {
        "extract_date": ((str, date), REQUIRED),
        "afcars": ((list, dict), None),
        "ncands": ((list, dict), None),
        "children": ((dict,), None),
        "episodes": ((dict,), None),
        "reports": ((dict,), None),
        "participation": ((dict,), None),
        "families": ((dict,), None),
        "engine": ((str,), "pandas"),
        "max_file_mb": ((int, float), DEFAULT_MAX_FILE_MB),
        # rules that make ids compare equal across tables (see ppeval.load.ids); none by default
        "id_normalise": ((list,), []),
    },
    "cohort": {
        "design": ((str,), "in_care"),
        # the prevention design does not yet recover its simulated truth: refused unless asked
        "allow_unvalidated_design": ((bool,), False),
        "entry_from": ((str, date), None),
        "entry_to": ((str, date), None),
        "unit": ((str,), "child"),
        "episode": ((str,), "first"),
        "min_stay_days": ((int,), 8),
        "max_age_at_removal": ((int, float), 18),
        "reunified_reasons": ((list,), ["reunification"]),
        "family_outcome": ((str,), "any"),
        "enrollment_window_days": ((int,), 90),
        "tpr_parent": ((str,), "either"),
        "delay_band_days": ((int,), 30),
        "censor_at_enrolment": ((bool,), True),
        "covariates": ((list,), []),
    },
    "propensity": {
        "model": ((str,), "logistic"),
        "covariates": ((list,), None),
        "common_support": ((str,), "none"),
        # separation (a covariate that predicts the arm exactly, common in small programs):
        # Firth's penalised likelihood, or "refuse" to stop with the covariate named
        "separation": ((str,), "firth"),
    },
    "matching": {
        "method": ((str,), "nearest"),
        "ratio": ((int,), 1),
        "caliper_sd": ((int, float), 0.2),
        "replace": ((bool,), False),
        "exact": ((list,), []),
        "order": ((str,), "largest"),
    },
    "outcomes": {ANY_KEYS: ((dict,), {})},
    "subgroups": ((list,), []),
    "report": {
        "suppress_below": ((int,), 11),
        "allow_unsuppressed": ((bool,), False),
        "run_log": ((str,), None),
        "language": ((str,), "en"),
        "program_name": ((str,), "parent partner program"),
    },
    "parallel": {
        "n_jobs": ((int,), -1),
        "dask_scheduler": ((str,), None),
    },
}

DATE_KEYS = {("data", "extract_date"), ("cohort", "entry_from"), ("cohort", "entry_to")}
SOURCE_TABLES = ("children", "episodes", "reports", "participation", "families")


def _suggest(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(options))}"


def _check(section: dict[str, Any], spec: dict[str, Any], where: str, applied: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    free = ANY_KEYS in spec
    for key, value in section.items():
        if key not in spec and not free:
            raise ConfigError(f"{where or 'config'}: unknown key {key!r}{_suggest(key, [k for k in spec if k != ANY_KEYS])}")
        sub = spec.get(key, spec.get(ANY_KEYS))
        path = f"{where}.{key}" if where else key
        if isinstance(sub, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config: {path} must be a table ([{path}]), got {type(value).__name__}")
            out[key] = _check(value, sub, path, applied)
        else:
            types, _default = sub
            if isinstance(value, bool) and bool not in types:
                raise ConfigError(f"config: {path} must be {' or '.join(t.__name__ for t in types)}, got a boolean")
            if not isinstance(value, types):
                raise ConfigError(
                    f"config: {path} must be {' or '.join(t.__name__ for t in types)}, got {type(value).__name__} {value!r}"
                )
            out[key] = value
    for key, sub in spec.items():
        if key == ANY_KEYS or key in out:
            continue
        path = f"{where}.{key}" if where else key
        if isinstance(sub, dict):
            out[key] = _check({}, sub, path, applied)
        else:
            default = sub[1]
            if default is REQUIRED:
                raise ConfigError(f"config: missing required key {path}")
            out[key] = copy.deepcopy(default)
            if default is not None:
                applied.append(f"{path} = {default!r}")
    return out


def _check_source(src: dict[str, Any], where: str) -> dict[str, Any]:
    for key in src:
        if key not in _SOURCE_SPEC:
            raise ConfigError(f"config: {where}: unknown key {key!r}{_suggest(key, list(_SOURCE_SPEC))}")
    if not (src.get("path") or src.get("paths") or src.get("url")):
        raise ConfigError(f"config: {where} needs 'path', 'paths' or (for SQL) 'url' and 'query'")
    if src.get("url") and not src.get("query"):
        raise ConfigError(f"config: {where} has 'url' but no 'query'")
    checked = _check(src, _SOURCE_SPEC, where, [])
    if checked.get("paths") is not None:
        _check_paths(checked["paths"], f"{where}.paths")
    for key, value in (checked.get("params") or {}).items():
        # bound by the database driver as one value each: never a list or a table
        if isinstance(value, (list, dict)) or not isinstance(value, (str, int, float, bool, date)):
            raise ConfigError(
                f"config: {where}.params.{key} must be one value (text, number, true/false or a date), "
                f"got {type(value).__name__}"
            )
    return checked


def _check_paths(paths: list[Any], where: str) -> None:
    for p in paths:
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"config: {where} must list file paths as text, got {p!r}")


class Config(dict):
    """A validated configuration (a dict of sections) with its base folder.

    Attributes
    ----------
    path : Path or None
        The TOML file it was read from.
    base_dir : Path
        Folder that relative paths are resolved against.
    defaults_applied : list of str
        ``section.key = value`` for every default filled in.
    """

    path: Path | None
    base_dir: Path
    defaults_applied: list[str]
    raw: dict[str, Any]

    @classmethod
    def from_toml(cls, path: str | Path) -> Config:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"{path} is a folder, not a config file (give the path of the .toml file)")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: the config file cannot be read ({exc.strerror or exc})") from None
        if data.startswith(codecs.BOM_UTF8):  # Windows Notepad saves UTF-8 with a byte-order mark
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            hint = (
                "; it looks UTF-16 encoded: save it as UTF-8"
                if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data[:200]
                else ""
            )
            raise ConfigError(
                f"{path}: the config file is not UTF-8 text ({exc.reason} at byte {exc.start}){hint}"
            ) from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        cfg = cls.from_dict(raw, base_dir=path.parent)
        cfg.path = path.resolve()
        return cfg

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: str | Path = ".") -> Config:
        applied: list[str] = []
        checked = _check(raw, SPEC, "", applied)
        cfg = cls(checked)
        cfg.raw = copy.deepcopy(raw)
        cfg.path = None
        cfg.base_dir = Path(base_dir).resolve()
        cfg.defaults_applied = applied
        for section, key in DATE_KEYS:
            value = cfg[section].get(key)
            if value is not None:
                cfg[section][key] = _parse_date(value, f"{section}.{key}")
        data = cfg["data"]
        for name in SOURCE_TABLES:
            if data.get(name) is not None:
                data[name] = _check_source(data[name], f"data.{name}")
        for preset in ("afcars", "ncands"):
            spec = data.get(preset)
            if isinstance(spec, list):
                data[preset] = {"paths": spec}
            if data.get(preset) is not None:
                data[preset] = _check(data[preset], _PRESET_SPEC, f"data.{preset}", [])
                if not data[preset]["paths"]:
                    raise ConfigError(f"config: data.{preset} lists no files")
                _check_paths(data[preset]["paths"], f"data.{preset}")
        _check_choices(cfg)
        _check_outcomes(cfg)
        return cfg

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, resolved against the config file's folder."""
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p)


_CHOICES = {
    ("cohort", "design"): ("in_care", "prevention"),
    ("cohort", "unit"): ("child", "family"),
    ("cohort", "episode"): ("first", "all"),
    ("cohort", "family_outcome"): ("any", "all"),
    ("cohort", "tpr_parent"): ("either", "mother", "father", "both"),
    ("propensity", "model"): ("logistic", "gbm"),
    ("propensity", "common_support"): ("none", "treated", "control", "both"),
    ("propensity", "separation"): ("firth", "refuse"),
    ("matching", "method"): ("nearest", "exact", "cem", "ipw"),
    ("matching", "order"): ("largest", "smallest", "random", "data"),
    ("data", "engine"): ("pandas", "duckdb", "auto"),
}


def _check_choices(cfg: Config) -> None:
    for (section, key), allowed in _CHOICES.items():
        value = cfg[section].get(key)
        if value is not None and value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"config: {section}.{key} = {value!r} is not one of {', '.join(map(repr, allowed))}{hint}"
            )
    max_mb = cfg["data"]["max_file_mb"]
    if not max_mb > 0 or max_mb == float("inf"):
        raise ConfigError(f"config: data.max_file_mb = {max_mb!r} must be a positive number of megabytes, e.g. 50000")
    from .load.ids import check_rules
    from .privacy import check_suppress_below  # privacy is heavy; config stays light to import

    check_rules(cfg["data"]["id_normalise"])

    check_suppress_below(cfg["report"]["suppress_below"], cfg["report"]["allow_unsuppressed"])
    if not 0 <= cfg["seed"] < 2**32:
        raise ConfigError(f"config: seed = {cfg['seed']} must be a whole number from 0 to {2**32 - 1}")
    lo, hi = cfg["cohort"].get("entry_from"), cfg["cohort"].get("entry_to")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"config: cohort.entry_from ({lo}) is after cohort.entry_to ({hi})")
    if cfg["cohort"]["design"] == "prevention" and not cfg["cohort"]["allow_unvalidated_design"]:
        raise ConfigError(
            "config: cohort.design = \"prevention\" is refused for now: on extracts simulated with a known program "
            "effect its estimates are biased (12-month removal difference +0.047 on average over 20 extracts of 3,000 "
            "children; 95% intervals covered the truth in 85% of them, not 95%), so its numbers cannot be published; "
            "set [cohort] allow_unvalidated_design = true to run it for internal checking only (the report then says "
            "so on every page)"
        )
    if cfg["matching"]["method"] in ("exact", "cem", "ipw"):
        raise ConfigError(
            f"config: matching.method = {cfg['matching']['method']!r} is refused for now: it starts each comparison "
            "unit at its own removal (or report) while served units start at enrolment, which biases the effects "
            "(on data simulated with no program effect it found one); use method = \"nearest\", which matches "
            "each comparison unit at the served unit's delay"
        )
    if cfg["matching"]["ratio"] < 1:
        raise ConfigError("config: matching.ratio must be at least 1")
    if cfg["matching"]["caliper_sd"] is not None and cfg["matching"]["caliper_sd"] <= 0:
        raise ConfigError("config: matching.caliper_sd must be positive")


_OUTCOME_KEYS = ("windows_months",)
_MAX_WINDOW_MONTHS = 240


def _check_outcomes(cfg: Config) -> None:
    """``[outcomes]``: names the design defines, each with ``windows_months`` = whole months."""
    from .outcomes import IN_CARE_OUTCOMES, PREVENTION_OUTCOMES

    design = cfg["cohort"]["design"]
    known = IN_CARE_OUTCOMES if design == "in_care" else PREVENTION_OUTCOMES
    for name, spec in cfg["outcomes"].items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; choose from {', '.join(known)}"
            raise ConfigError(f"config: outcomes.{name} is not an outcome of the {design} design{hint}")
        for key in spec:
            if key not in _OUTCOME_KEYS:
                raise ConfigError(f"config: outcomes.{name}: unknown key {key!r}{_suggest(key, list(_OUTCOME_KEYS))}")
        months = spec.get("windows_months", [])
        if not isinstance(months, list) or not all(
            isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= _MAX_WINDOW_MONTHS for m in months
        ):
            raise ConfigError(
                f"config: outcomes.{name}.windows_months must be a list of whole months from 1 to "
                f"{_MAX_WINDOW_MONTHS}, e.g. [12, 24]; got {months!r}"
            )


def _parse_date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        # a TOML date-time: accepted only when it is a plain date at midnight
        if value.tzinfo is None and value.time() == datetime.min.time():
            return value.date()
        raise ConfigError(f"config: {where} = {value.isoformat()} must be a date without a time (YYYY-MM-DD)")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"config: {where} = {value!r} is not a date (expected YYYY-MM-DD)") from None
