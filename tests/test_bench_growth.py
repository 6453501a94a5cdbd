"""The growth bench's fit: the exponent b of log(y) = a + b log(x), on data of known growth."""

from __future__ import annotations

import pytest

from bench.growth import fit_exponent


def test_fit_exponent_recovers_known_powers() -> None:
    xs = [10, 100, 1_000, 5_000]
    assert fit_exponent(xs, [3.0 * x for x in xs]) == pytest.approx(1.0)
    assert fit_exponent(xs, [0.5 * x**2 for x in xs]) == pytest.approx(2.0)
    assert fit_exponent(xs, [7.0 * x**0.5 for x in xs]) == pytest.approx(0.5)
    assert fit_exponent(xs, [4.2] * 4) == pytest.approx(0.0)


def test_fit_exponent_is_least_squares_over_noisy_points() -> None:
    # log10 x = 1, 2, 3 and log10 y = 0, 1.5, 2: slope (2 - 0) / 2 = 1.0 by least squares
    assert fit_exponent([10, 100, 1_000], [1.0, 10**1.5, 100.0]) == pytest.approx(1.0)


def test_fit_exponent_skips_points_it_cannot_log_and_needs_two_sizes() -> None:
    assert fit_exponent([20, 200, 2_000, 0], [2.0, 20.0, 200.0, 5.0]) == pytest.approx(1.0)
    assert fit_exponent([20, 200], [1.0, 0.0]) is None  # one usable point
    assert fit_exponent([20, 20], [1.0, 2.0]) is None  # one size
    assert fit_exponent([], []) is None
