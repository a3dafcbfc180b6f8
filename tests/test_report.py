"""The Markdown report's wording: what its numbers are (one seed or an interval) and the SGD stability line."""

from __future__ import annotations

from cllab import report


def test_one_seed_is_named_as_such_and_claims_no_interval():
    line = report.seeds_line([0])
    assert line == "Test accuracy of one seed (0): no interval."
    assert "seeds" not in line and "±" not in line


def test_several_seeds_give_the_interval_and_list_them():
    assert report.seeds_line([0, 1, 2]) == (
        "Test accuracy, mean ± half-width of the 95 % t-interval over 3 seeds (0, 1, 2).")


def _sequence_text(seeds, divergence):
    stat = {"mean": 0.9, "ci95": None}
    entry = {"average_accuracy": stat, "bwt": stat, "forgetting": stat, "fwt": stat, "val_average_accuracy": stat,
             "average_after_task": [stat] * 3, "first_task_after_task": [stat] * 3}
    return report.sequence_markdown({"ewc": entry}, {"ewc": {"lambda": 10}}, {"test": stat, "val": stat},
                                    "setup.", seeds, [], {}, divergence)


def test_sequence_report_prints_the_stability_line_only_when_given():
    assert "diverges near 2" in _sequence_text([0, 1], {"ewc": 0.21})
    assert "diverges near 2" not in _sequence_text([0, 1], {})  # Adam: the stage passes none
    assert "Test accuracy of one seed (0)" in _sequence_text([0], {})
