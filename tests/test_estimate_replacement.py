"""Effects after matching with replacement: clustered by matched unit, equal to R.

With replacement a comparison unit serves several matched sets, so the sets overlap and
cannot be clusters. ppeval follows MatchIt's recommendation for ``match.data()`` output
(vignette "Estimating Effects After Matching", MatchIt 4.5.1, section "Matching with
replacement": robust SEs, after Hill & Reiter 2006): one row per unit, its weight
counting its reuse, and the unit as the cluster, in the HC1 form of
``sandwich::vcovCL(fit, cluster = ~id)`` (= ``vcovHC(fit, type = "HC1")``), and as
``coxph(..., cluster = id)`` for Cox models. The vignette's alternative, two-way clusters
``~subclass + id`` on ``get_matches()`` output, is printed below for comparison only.

Fixture: MatchIt's lalonde, 1:1 nearest-neighbour matching with replacement on the logit
of the propensity score, caliper 0.2 SD (run ``replace`` of
tests/reference/lalonde_matchit.R, whose weights ppeval's ``match(replace=True)``
reproduces exactly: 184 treated, 83 distinct comparison units). R 4.2.2, sandwich 3.0-2,
survival 3.5-3 (Debian), code common to the tests::

    library(sandwich); library(survival); library(jsonlite); options(digits = 17)
    lal <- read.csv("tests/reference/lalonde.csv"); lal$y <- as.numeric(lal$re78 > 0)
    js <- fromJSON("tests/reference/lalonde_matchit.json")
    lal$w <- js$runs$replace$weights
    md <- lal[lal$w > 0, ]                      # match.data(m): 267 rows, one per unit
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ppeval.estimate import estimate
from ppeval.matching import match
from ppeval.propensity import propensity

REF = Path(__file__).parent / "reference"
REPLACE = json.loads((REF / "lalonde_matchit.json").read_text())["runs"]["replace"]
COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


@pytest.fixture(scope="module")
def m_rep():
    lal = pd.read_csv(REF / "lalonde.csv")
    lal["y"] = (lal.re78 > 0).astype(int)
    m = match(propensity(lal, "treat", COVS), replace=True)
    # the same matched sample as R's: every unit's weight equal
    np.testing.assert_allclose(m.data["weight"], np.asarray(REPLACE["weights"])[m.data.index], atol=1e-12)
    return m


def test_binary_effects_cluster_by_unit_equal_vcovCL_id(m_rep):
    """R::

        fl <- lm(y ~ treat, data = md, weights = w)
        fg <- glm(y ~ treat, data = md, weights = w, family = quasibinomial)
        fp <- glm(y ~ treat, data = md, weights = w, family = quasipoisson)
        sqrt(diag(vcovCL(fl, cluster = ~row)))                 # treat 0.063709481967449119
        sqrt(diag(vcovCL(fg, cluster = ~row, type = "HC1")))   # treat 0.34883599739096699
        sqrt(diag(vcovCL(fp, cluster = ~row, type = "HC1")))   # treat 0.083883011508838798
        coef(fl)[2]  # -0.0054347826086963303;  coef(fg)[2] -0.029641345333277187
        coef(fp)[2]  # -0.0071684894786126713
        # for comparison, not the convention used: get_matches(m) and ~subclass + id
        # gives 0.06313763586755726 (lm) and 0.34525646913086755 (glm, HC0)
        # the old first-set-only clustering gave neither
    """
    res = estimate(m_rep, binary="y")
    rd, rr, or_ = res["risk_difference"], res["risk_ratio"], res["odds_ratio"]
    assert rd.estimate == pytest.approx(-0.0054347826086963303, abs=1e-12)
    assert rd.se == pytest.approx(0.063709481967449119, abs=1e-10)
    assert rd.se == pytest.approx(REPLACE["outcome"]["lm_se_HC1"][1], abs=1e-10)
    assert np.log(or_.estimate) == pytest.approx(-0.029641345333277187, abs=1e-9)
    assert or_.se == pytest.approx(0.34883599739096699, abs=1e-9)
    assert np.log(rr.estimate) == pytest.approx(-0.0071684894786126713, abs=1e-9)
    assert rr.se == pytest.approx(0.083883011508838798, abs=1e-9)
    # one cluster per matched unit, and the method says so
    assert rd.n_clusters == 267
    assert "matched unit" in rd.method and "cluster = ~id" in rd.method
    # overlapping sets: no McNemar test and no set-based Rosenbaum bounds
    assert not any(k.startswith(("mcnemar", "rosenbaum")) for k in res.tests)


def test_not_the_first_set_clustering(m_rep):
    """The SE differs from clustering each reused unit into the first set it joined
    (what ``match_id`` of ``m.data`` holds), the convention this replaces."""
    # first-set clustering: SE 0.06209528552475243 on this fixture
    first = estimate(SimpleNamespace(data=m_rep.data), binary="y", treatment="treat")["risk_difference"]
    unit = estimate(m_rep, binary="y")["risk_difference"]
    assert first.estimate == pytest.approx(unit.estimate, abs=1e-12)
    assert abs(first.se - unit.se) > 1e-4


def test_cox_clusters_by_unit_equal_coxph_cluster_id(m_rep):
    """A time-to-event outcome on the same rows (time = age, event = y; many ties). R::

        fc <- coxph(Surv(age, y) ~ treat, data = md, weights = w, cluster = row)
        coef(fc)               # -0.135084577565212
        sqrt(diag(vcov(fc)))   #  0.20680518816371737
    """
    hr = estimate(m_rep, duration="age", event="y")["hazard_ratio"]
    assert np.log(hr.estimate) == pytest.approx(-0.135084577565212, abs=1e-9)
    assert hr.se == pytest.approx(0.20680518816371737, abs=1e-8)
    assert hr.n_clusters == 267


def test_family_blocks_cluster_by_family():
    """With siblings matched as blocks the matched unit is the family. R::

        md$fam <- ceiling(md$row / 3)                               # 124 families
        sqrt(diag(vcovCL(lm(re78 ~ treat, data = md, weights = w), cluster = ~fam)))
        # treat 926.97120119889655
    """
    lal = pd.read_csv(REF / "lalonde.csv")
    lal["weight"] = REPLACE["weights"]
    md = lal[lal.weight > 0].reset_index(drop=True)
    md["treated"] = md.treat == 1
    md["fam"] = np.ceil(md.row / 3).astype(int)
    md["match_id"] = np.arange(len(md))  # ignored with replacement
    m = SimpleNamespace(data=md, settings={"replace": True, "cluster": "fam"})
    e = estimate(m, continuous="re78")["mean_difference"]
    assert e.estimate == pytest.approx(1994.6431282608717, abs=1e-8)
    assert e.se == pytest.approx(926.97120119889655, abs=1e-8)
    assert e.n_clusters == 124
    assert "matched unit (fam" in e.method


def test_cohort_with_replacement_clusters_by_family(tmp_path):
    """Through a cohort (comparison units followed until their own enrolment, so estimate()
    rebuilds the rows with censoring columns): the clusters are still the matched units
    (families, ``match_family``), for the time-to-event, window and days-in-care effects."""
    from ppeval.evaluation import Evaluation
    from ppeval.synthetic import write_synthetic

    write_synthetic(tmp_path, n_children=800, seed=5)
    toml = tmp_path / "eval.toml"
    toml.write_text(toml.read_text().replace("replace = false", "replace = true"))
    ev = Evaluation.from_toml(toml)
    m = ev.matched
    assert m.settings["replace"] and m.settings["cluster"] == "match_family"
    res = estimate(m, outcome="reunification", windows=[12])
    hr = res["hazard_ratio"]
    fam = m.data["match_family"]
    assert hr.n_clusters == fam.nunique() != m.data["match_id"].nunique()
    assert "matched unit (match_family" in hr.method
    assert "matched unit (match_family" in res["risk_difference"].method
    days = ev.days_in_care
    assert days["method"].str.contains("matched unit (match_family", regex=False).all()
    # the methods text states the convention, and why there are no Rosenbaum bounds
    from ppeval.report import _methods

    text = " ".join(_methods(ev, m, ev.balance))
    assert "cluster-robust by matched unit" in text and "Rosenbaum bounds need matched sets that do not overlap" in text
    assert "Standard errors are cluster-robust by matched set" not in text
