"""The benchmark's figures, verdicts against targets, and the page and console tables."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

# `bench` is a folder at the repository root run with `python -m bench`; it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.figures import Figure, Section, Table, Target, at_least, at_most, below
from bench.machine import Machine
from bench.report import (
    RunInfo,
    markdown_table,
    missed_notes,
    render_console,
    render_page,
    summary_rows,
)


@pytest.mark.parametrize(
    ("value", "target", "unit", "digits", "expected"),
    [
        (2500.0, at_least(2000), "runs/s", 0, "reached"),
        (2000.0, at_least(2000), "runs/s", 0, "reached"),
        (1500.0, at_least(2000), "runs/s", 0, "missed by 500 runs/s (25 % of the target)"),
        (49.9, below(50), "ms", 1, "reached"),
        (50.0, below(50), "ms", 1, "missed by 0.0 ms (0 % of the target)"),
        (75.0, below(50), "ms", 0, "missed by 25 ms (50 % of the target)"),
        (0.0, at_most(0), "", 0, "reached"),
        (3.0, at_most(0), "", 0, "missed by 3"),
        (12.5, below(10), "s", 2, "missed by 2.50 s (25 % of the target)"),
    ],
)
def test_figure_verdict(
    value: float, target: Target, unit: str, digits: int, expected: str
) -> None:
    figure = Figure(name="x", value=value, unit=unit, target=target, digits=digits)

    assert figure.verdict == expected


def test_figure_without_target_or_value() -> None:
    untargeted = Figure(name="create rate", value=1234.5, unit="jobs/s")
    unmeasured = Figure(name="lag p99", value=None, unit="ms", target=below(50))

    assert untargeted.verdict == ""
    assert untargeted.reached is None
    assert untargeted.value_text == "1,234 jobs/s"
    assert unmeasured.verdict == "not measured"
    assert unmeasured.reached is None
    assert unmeasured.value_text == "not measured"


@pytest.mark.parametrize(
    ("figure", "expected"),
    [
        (Figure(name="a", value=1, unit="runs/s", target=at_least(2000)), ">= 2,000 runs/s"),
        (Figure(name="b", value=1, unit="MB", target=below(80), digits=1), "< 80.0 MB"),
        (Figure(name="c", value=1, unit="", target=at_most(0)), "<= 0"),
        (Figure(name="d", value=1, unit="MB"), ""),
    ],
)
def test_figure_target_text(figure: Figure, expected: str) -> None:
    assert figure.target_text == expected


def test_markdown_table_escapes_pipes() -> None:
    lines = markdown_table(("name", "value"), [("a|b", "1")])

    assert lines == ["| name | value |", "| --- | --- |", "| a\\|b | 1 |"]


def sections() -> list[Section]:
    return [
        Section(
            title="1. Sustained throughput",
            method="Jobs fired.",
            figures=[
                Figure(name="runs/s", value=1500, unit="runs/s", target=at_least(2000)),
                Figure(name="slots checked", value=10, unit=""),
            ],
            notes=["A note."],
        ),
        Section(
            title="5. Coordinator hot path",
            method="Sampled.",
            tables=[
                Table(
                    title="Top by self time",
                    columns=("function (file)", "self", "cumulative"),
                    rows=(("`f (a.py)`", "30.0%", "40.0%"), ("`g (b.py)`", "20.0%", "20.0%")),
                )
            ],
        ),
    ]


def test_summary_rows_list_targeted_figures_with_section_number() -> None:
    assert summary_rows(sections()) == [
        (
            "1. runs/s",
            "1,500 runs/s",
            ">= 2,000 runs/s",
            "missed by 500 runs/s (25 % of the target)",
        )
    ]


def test_missed_notes_name_the_profile_top_costs() -> None:
    all_sections = sections()

    notes = missed_notes(all_sections, all_sections[1])

    assert notes == [
        "- 1. runs/s: 1,500 runs/s, missed by 500 runs/s (25 % of the target).",
        "- The coordinator profile's largest costs, own code: `f (a.py)` 30.0%, `g (b.py)` 20.0%.",
    ]


def test_missed_notes_empty_when_every_target_is_reached() -> None:
    reached = Section(
        title="2. Lag",
        method="",
        figures=[Figure(name="p99", value=10, unit="ms", target=below(50))],
    )

    assert missed_notes([reached], None) == []


MACHINE = Machine(
    cpu_model="Test CPU",
    cores=2,
    memory_bytes=24 * 2**30,
    os_name="Debian GNU/Linux 12 (bookworm)",
    kernel="6.1.0",
    python="3.11.7 (cpython)",
    etcd="3.5.1",
    grpcio="1.85.3",
)


def test_render_page_has_machine_command_targets_and_sections() -> None:
    info = RunInfo(
        date=datetime(2026, 12, 4, 23, 4, tzinfo=UTC),
        command="python -m bench --quick",
        mode="quick",
        wall_time_s=99.6,
        settings=(("job executor", "`noop`"),),
        caveats=("Quick mode.",),
    )

    page = render_page(MACHINE, info, sections())

    assert page.startswith("# Benchmarks\n")
    assert "- date: 2026-12-04 23:04 UTC" in page
    assert "- command: `python -m bench --quick`" in page
    assert "- wall time: 100 s" in page
    assert "> Quick mode.\n" in page
    assert "| CPU | Test CPU |" in page
    assert "| RAM | 24.0 GiB |" in page
    assert "| OS | Debian GNU/Linux 12 (bookworm), Linux 6.1.0 |" in page
    assert "| etcd | 3.5.1 |" in page
    assert "| grpcio | 1.85.3 |" in page
    assert "| job executor | `noop` |" in page
    expected_row = (
        "| 1. runs/s | 1,500 runs/s | >= 2,000 runs/s | missed by 500 runs/s (25 % of the target) |"
    )
    assert expected_row in page
    assert "## 1. Sustained throughput\n\nJobs fired.\n" in page
    assert "| `f (a.py)` | 30.0% | 40.0% |" in page
    assert "- A note.\n" in page
    assert page.endswith("\n")


def test_render_console_lists_every_figure_with_verdict() -> None:
    text = render_console(sections())

    assert "  runs/s: 1,500 runs/s  [>= 2,000 runs/s: missed by 500 runs/s" in text
    assert "  slots checked: 10\n" in text
    assert "    `f (a.py)`  30.0%  40.0%" in text
    assert "  note: A note." in text
