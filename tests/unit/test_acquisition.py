"""Stochastic power sampling as a sort key: its draws follow BALD^β."""

from __future__ import annotations

from collections import Counter

import pytest

from worker.scoring.acquisition import gumbel_noise, power_key


def test_the_top_of_the_power_key_is_drawn_with_probability_proportional_to_bald_to_the_beta():
    bald = {"a": 1.0, "b": 2.0, "c": 3.0}
    rounds = 12_000
    for beta, expected in ((1.0, [1 / 6, 2 / 6, 3 / 6]), (2.0, [1 / 14, 4 / 14, 9 / 14])):
        tops = Counter(max(bald, key=lambda r: power_key(bald[r], r, f"round-{n}", beta=beta)) for n in range(rounds))
        observed = [tops[r] / rounds for r in "abc"]
        assert observed == pytest.approx(expected, abs=0.015), (beta, observed)


def test_the_noise_is_stable_within_a_round_and_redrawn_in_the_next():
    assert gumbel_noise("r1", "v0003") == gumbel_noise("r1", "v0003")
    assert gumbel_noise("r1", "v0003") != gumbel_noise("r1", "v0004")
    assert gumbel_noise("r1", "v0003") != gumbel_noise("r2", "v0003")


def test_beta_zero_is_a_uniform_draw_and_bad_scores_are_refused():
    assert power_key(0.9, "r1", "v1", beta=0.0) == gumbel_noise("r1", "v1")
    assert power_key(0.0, "r1", "v1") < power_key(1e-3, "r1", "v1")  # zero BALD: floored, never NaN
    with pytest.raises(ValueError, match="record 'r1': score nan"):
        power_key(float("nan"), "r1", "v1")
    with pytest.raises(ValueError, match="beta"):
        power_key(0.5, "r1", "v1", beta=-1)
