"""Ratios of two compared rows, round by round (bench/run.py): what the table prints beside medians."""

from __future__ import annotations

from bench.run import Row, median_row, per_round


def _row(target: str, rps: float, cpu: float | None) -> Row:
    return Row("c=64", target, 64, rps, 1.0, 2.0, 0, cpu)


def test_each_round_is_compared_with_the_same_round_of_the_other_row() -> None:
    keyed = median_row([_row("k", 900, 1200), _row("k", 800, 1100), _row("k", 700, 1300)])
    plain = median_row([_row("p", 1200, 1000), _row("p", 1000, 1000), _row("p", 1400, 1000)])
    assert keyed.extra["rounds_cpu"] == [1200, 1100, 1300]
    assert per_round(keyed, plain, "rounds_cpu") == [1.2, 1.1, 1.3]
    assert per_round(keyed, plain, "rounds") == [0.75, 0.8, 0.5]


def test_rounds_without_a_figure_are_left_out_and_a_single_round_gives_none() -> None:
    a = median_row([_row("a", 10, None), _row("a", 10, 200)])
    b = median_row([_row("b", 10, 100), _row("b", 10, 100)])
    assert per_round(a, b, "rounds_cpu") == [2.0]
    assert per_round(median_row([_row("a", 10, 1)]), median_row([_row("b", 10, 1)]), "rounds") == []
    assert per_round(a, median_row([_row("b", 10, 1)]), "rounds") == []
