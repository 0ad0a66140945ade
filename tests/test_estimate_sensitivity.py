"""E-values (VanderWeele & Ding 2017) and Rosenbaum bounds for matched binary outcomes."""

from math import comb, sqrt

import numpy as np
import pytest

from ppeval.estimate import evalue, rosenbaum_bounds


def test_evalue_paper_example():
    """VanderWeele & Ding (2017), Ann Intern Med: RR 3.9 (95% CI 1.8 to 8.7) gives an
    E-value of 7.26 for the estimate and 3.0 for the lower limit."""
    ev = evalue(3.9, 1.8, 8.7, measure="risk_ratio")
    assert ev.evalue == pytest.approx(3.9 + sqrt(3.9 * 2.9), abs=1e-12)
    assert round(ev.evalue, 2) == 7.26
    assert ev.evalue_ci == pytest.approx(3.0, abs=1e-12)


def test_evalue_protective_and_null_ci():
    ev = evalue(0.8, 0.7, 0.95)
    assert ev.evalue == pytest.approx(1.25 + sqrt(1.25 * 0.25))
    assert ev.evalue_ci == pytest.approx(1 / 0.95 + sqrt(1 / 0.95 * (1 / 0.95 - 1)))
    assert evalue(1.3, 0.9, 1.8).evalue_ci == 1.0


def test_evalue_odds_ratio_rare_and_common():
    common = evalue(2.25, 1.44, 3.24, measure="odds_ratio")
    assert common.rr_estimate == pytest.approx(1.5)
    assert common.evalue == pytest.approx(1.5 + sqrt(0.75))
    assert common.evalue_ci == pytest.approx(1.2 + sqrt(1.2 * 0.2))
    rare = evalue(2.25, 1.44, 3.24, measure="odds_ratio", rare=True)
    assert rare.evalue == pytest.approx(2.25 + sqrt(2.25 * 1.25))


def test_evalue_hazard_ratio_common_outcome():
    """Common outcome: RR = (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))."""
    hr = 0.56
    rr = (1 - 0.5 ** sqrt(hr)) / (1 - 0.5 ** sqrt(1 / hr))
    ev = evalue(hr, 0.46, 0.69, measure="hazard_ratio")
    assert ev.rr_estimate == pytest.approx(rr)
    assert ev.evalue == pytest.approx(1 / rr + sqrt(1 / rr * (1 / rr - 1)))
    rare = evalue(hr, 0.46, 0.69, measure="hazard_ratio", rare=True)
    assert rare.evalue == pytest.approx(1 / hr + sqrt(1 / hr * (1 / hr - 1)))


def test_evalue_rejects_difference():
    with pytest.raises(ValueError):
        evalue(0.1, measure="risk_difference")


def test_rosenbaum_hand_example():
    """10 discordant pairs, 8 with the event only in the treated unit.
    Gamma = 1: P(Binom(10, 1/2) >= 8) = 56/1024.
    Gamma = 2: P(Binom(10, 2/3) >= 8) = (45*2^8 + 10*2^9 + 2^10) / 3^10 = 17664/59049."""
    rb = rosenbaum_bounds(8, 2, gammas=[1, 2])
    assert rb.table.loc[0, "p_upper"] == pytest.approx(56 / 1024, abs=1e-15)
    assert rb.table.loc[0, "p_lower"] == pytest.approx(56 / 1024, abs=1e-15)
    assert rb.table.loc[1, "p_upper"] == pytest.approx(17664 / 59049, abs=1e-15)
    lower = sum(comb(10, k) * (1 / 3) ** k * (2 / 3) ** (10 - k) for k in range(8, 11))
    assert rb.table.loc[1, "p_lower"] == pytest.approx(lower, abs=1e-15)
    assert rb.gamma_critical == 1.0  # 0.0547 > 0.05 already at Gamma = 1


def test_rosenbaum_critical_gamma():
    rb = rosenbaum_bounds(30, 12)
    g = rb.gamma_critical
    assert 1.3 < g < 1.45
    from scipy import stats

    assert stats.binom.sf(29, 42, g / (1 + g)) == pytest.approx(0.05, abs=1e-9)
    # direction follows the data
    assert rosenbaum_bounds(12, 30).gamma_critical == pytest.approx(g)
    assert np.all(np.diff(rb.table.p_upper) > 0)
