"""Ratios of two compared rows, round by round (bench/run.py): what the table prints beside medians."""

from __future__ import annotations

from bench.run import Row, _ratio, median_row, paired, per_round, rotated


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


def test_the_headline_is_the_median_of_the_rounds_ratios_not_the_ratio_of_the_medians() -> None:
    # Rounds that drift together (round 2 fast for both): every round's ratio, and the headline, is 0.5.
    a = median_row([_row("a", 500, 1.0), _row("a", 900, 1.0), _row("a", 400, 1.0)])
    b = median_row([_row("b", 1000, 1.0), _row("b", 1800, 1.0), _row("b", 800, 1.0)])
    assert paired(a, b, "rounds") == 0.5
    out: dict[str, object] = {}
    _ratio(out, "a / b", a, b, "rounds")
    assert out["a / b"] == 0.5
    assert out["a / b, round by round"] == [0.5, 0.5, 0.5]
    assert out["a / b, ratio of medians"] == 0.5
    # Rounds of `b` that drift apart from `a`'s: the headline follows the rounds, not the medians.
    drifted = median_row([_row("b", 1000, 1.0), _row("b", 1000, 1.0), _row("b", 600, 1.0)])
    _ratio(out, "a / drifted", a, drifted, "rounds")
    assert out["a / drifted, round by round"] == [0.5, 0.9, 0.667]
    assert out["a / drifted"] == 0.667
    assert out["a / drifted, ratio of medians"] == 0.5


def test_one_round_falls_back_to_the_ratio_of_the_figures() -> None:
    out: dict[str, object] = {}
    _ratio(out, "cpu", median_row([_row("a", 10, 300)]), median_row([_row("b", 10, 200)]), "rounds_cpu")
    assert out == {"cpu": 1.5}


def test_each_round_starts_one_row_later_so_no_row_keeps_a_place() -> None:
    rows = ["gateway", "otel", "forwarder", "keyed"]
    orders = [rotated(rows, i) for i in range(5)]
    assert orders[0] == rows
    assert orders[1] == ["otel", "forwarder", "keyed", "gateway"]
    assert orders[4] == rows
    assert {order[0] for order in orders[:4]} == set(rows)
    assert all(sorted(order) == sorted(rows) for order in orders)
    assert rotated([], 3) == []
