"""The training loop every distillation shares: its time box, its least steps, its resume."""

from __future__ import annotations

from itertools import repeat

from needs import need_torch

torch = need_torch()

from streambot.compress.distill import train_student  # noqa: E402


def train(clock_ticks, **kwargs):
    """A one-weight model trained toward 1.0 on a clock that ticks once a read."""
    model = torch.nn.Linear(1, 1)
    ticks = iter(clock_ticks)
    x = torch.ones(1, 1)
    return train_student(
        model,
        repeat(x),
        lambda batch: (model(batch) - 1.0).pow(2).mean(),
        widths={"in": 1},
        clock=lambda: float(next(ticks)),
        **kwargs,
    )


def test_a_slow_machine_trains_past_its_minutes_until_the_least_steps():
    # the clock says the budget is spent after 2 steps; the student still gets its 7
    report = train(range(1000), budget_s=3, min_steps=7)
    assert report.steps == 7
    assert report.budget_spent_at == 2  # recorded, and logged once


def test_a_fast_machine_trains_for_its_whole_budget_beyond_the_least_steps():
    report = train(range(1000), budget_s=20, min_steps=3)
    assert report.steps == 19  # the clock read at start, then once per step
    assert report.budget_spent_at is None


def test_a_resumed_distillation_counts_its_earlier_steps_toward_the_least(tmp_path):
    resume = tmp_path / "resume.pt"
    first = train(range(1000), budget_s=0, min_steps=4, resume_path=resume)
    second = train(range(1000), budget_s=0, min_steps=10, resume_path=resume)
    assert (first.steps, second.resumed_from, second.steps) == (4, 4, 6)


def test_the_step_cap_wins_over_the_least_steps():
    report = train(range(1000), budget_s=0, min_steps=50, max_steps=5)
    assert report.steps == 5
