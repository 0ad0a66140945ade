"""Continuous outcomes in ``estimate()``: the difference in weighted means with a
cluster-robust SE, equal to R ``lm(y ~ treat, weights = w)`` + ``sandwich::vcovCL``.

Fixture: MatchIt's lalonde matched in R (tests/reference/lalonde_matchit.R; weights and
subclasses from tests/reference/lalonde_matchit.json), outcome ``re78`` (earnings).
R 4.2.2, sandwich 3.0-2 (Debian), code common to the tests::

    library(sandwich); library(jsonlite); options(digits = 17)
    lal <- read.csv("tests/reference/lalonde.csv")
    js <- fromJSON("tests/reference/lalonde_matchit.json")
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ppeval.errors import DataError
from ppeval.estimate import estimate

REF = Path(__file__).parent / "reference"
RUNS = json.loads((REF / "lalonde_matchit.json").read_text())["runs"]


def _matched(run: str) -> pd.DataFrame:
    lal = pd.read_csv(REF / "lalonde.csv")
    lal["weight"] = RUNS[run]["weights"]
    lal["match_id"] = RUNS[run]["subclass"]
    lal["treated"] = lal.treat == 1
    return lal[lal.weight > 0].reset_index(drop=True)


def test_pairs_equal_lm_vcovCL_subclass():
    """Main run (1:1, caliper 0.2 SD, no replacement: 117 pairs). R::

        lal$w <- js$runs$main$weights; lal$subclass <- js$runs$main$subclass
        mm <- lal[lal$w > 0, ]
        fm <- lm(re78 ~ treat, data = mm, weights = w)
        coef(fm)                                     # treat 1770.6029064102606
        sqrt(diag(vcovCL(fm, cluster = ~subclass)))  # treat 924.23434704625993 (HC1, cadjust)
    """
    md = _matched("main")
    res = estimate(SimpleNamespace(data=md), continuous="re78")
    e = res["mean_difference"]
    assert e.estimate == pytest.approx(1770.6029064102606, abs=1e-8)
    assert e.se == pytest.approx(924.23434704625993, abs=1e-8)
    assert (e.n_treated, e.n_comparison, e.n_clusters) == (117, 117, 117)
    t = md.treated
    assert e.extra["mean_treated"] == pytest.approx(md.re78[t].mean(), abs=1e-8)
    assert e.estimate == pytest.approx(e.extra["mean_treated"] - e.extra["mean_comparison"], abs=1e-8)
    assert e.ci_low < e.estimate < e.ci_high and 0 < e.p_value < 1
    assert "vcovCL" in e.method and "match_id" in e.method
    assert list(res.to_frame()["measure"]) == ["mean_difference"]


def test_ratio2_unequal_weights_equal_lm_vcovCL():
    """Ratio 2 (some treated units with one control, so control weights differ). R::

        lal$w2 <- js$runs$ratio2$weights; lal$sub2 <- js$runs$ratio2$subclass
        m2 <- lal[lal$w2 > 0, ]
        f2 <- lm(re78 ~ treat, data = m2, weights = w2)
        coef(f2)                                 # treat 1622.3440081196607
        sqrt(diag(vcovCL(f2, cluster = ~sub2)))  # treat 899.84240493784057
        weighted.mean(m2$re78[m2$treat == 0], m2$w2[m2$treat == 0])  # 5003.3611696581202
    """
    e = estimate(SimpleNamespace(data=_matched("ratio2")), continuous="re78")["mean_difference"]
    assert e.estimate == pytest.approx(1622.3440081196607, abs=1e-8)
    assert e.se == pytest.approx(899.84240493784057, abs=1e-8)
    assert e.extra["mean_comparison"] == pytest.approx(5003.3611696581202, abs=1e-8)


def test_missing_values_left_out_and_counted():
    """Rows with a missing value are dropped, as R's lm does by default (na.omit). R::

        mm$y2 <- mm$re78; mm$y2[seq(1, nrow(mm), by = 7)] <- NA
        fm2 <- lm(y2 ~ treat, data = mm, weights = w)
        coef(fm2)[2]                                     # 2170.3532445999986
        sqrt(diag(vcovCL(fm2, cluster = ~subclass)))[2]  # 1021.9316574026381; nobs 200
    """
    md = _matched("main")
    md["y2"] = md.re78.where(np.arange(len(md)) % 7 != 0)
    res = estimate(SimpleNamespace(data=md), continuous="y2")
    e = res["mean_difference"]
    assert e.n == int(md.y2.notna().sum()) == 200
    assert e.estimate == pytest.approx(_R_MISSING[0], abs=1e-8)
    assert e.se == pytest.approx(_R_MISSING[1], abs=1e-8)
    assert any("left out" in s for s in res.flow["step"])


_R_MISSING = (2170.3532445999986, 1021.9316574026381)


def test_refusals():
    md = _matched("main")
    with pytest.raises(DataError, match="not found"):
        estimate(SimpleNamespace(data=md), continuous="nope")
    with pytest.raises(DataError, match="numeric"):
        estimate(SimpleNamespace(data=md.assign(s="a")), continuous="s")
    few = md.assign(y=np.where(md.treated, np.nan, md.re78))
    few.loc[few.index[few.treated][0], "y"] = 1.0
    with pytest.raises(DataError, match="two rows"):
        estimate(SimpleNamespace(data=few), continuous="y")
    with pytest.raises(ValueError, match="exactly one"):
        estimate(SimpleNamespace(data=md), binary="treat", continuous="re78")
