"""ppeval: evaluate peer-parent (parent partner) programs in child welfare.

The pipeline runs load -> validate -> cohort -> propensity -> match -> balance ->
estimate -> report; each stage is a module usable alone in a notebook.

Examples
--------
>>> import ppeval
>>> ppeval.__version__ >= "0.1"
True
"""

from importlib.metadata import PackageNotFoundError, version

from .balance import Balance, balance
from .cohort import Cohort, SampleFlow, build_cohort
from .config import Config
from .errors import ConfigError, DataError, PpevalError
from .estimate import (
    AalenJohansen,
    CoxPH,
    Effect,
    EffectResults,
    FineGray,
    KaplanMeier,
    dose_response,
    estimate,
    evalue,
    rosenbaum_bounds,
    subgroup_effects,
)
from .evaluation import Evaluation
from .extract import Extract, InputFile
from .indicators import cfsr_indicators
from .load import load_extract
from .matching import MatchedSample, match
from .problems import Problem, ValidationReport
from .propensity import PropensityScore, propensity

try:
    __version__ = version("ppeval")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "AalenJohansen",
    "CoxPH",
    "Effect",
    "FineGray",
    "KaplanMeier",
    "dose_response",
    "evalue",
    "rosenbaum_bounds",
    "subgroup_effects",
    "Balance",
    "EffectResults",
    "Evaluation",
    "MatchedSample",
    "PropensityScore",
    "balance",
    "estimate",
    "match",
    "propensity",
    "Cohort",
    "SampleFlow",
    "build_cohort",
    "cfsr_indicators",
    "Config",
    "ConfigError",
    "DataError",
    "Extract",
    "InputFile",
    "PpevalError",
    "Problem",
    "ValidationReport",
    "__version__",
    "load_extract",
]
