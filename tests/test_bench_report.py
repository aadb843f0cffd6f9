"""bench/run.py keeps the run it replaces beside its own: the "Before and after" table."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
run = sys.modules["bench_run"] = importlib.util.module_from_spec(_spec)  # its dataclasses look it up
_spec.loader.exec_module(run)


def test_the_committed_report_is_read_back_with_every_target_and_the_request_path():
    facts, figures = run.earlier(ROOT / "bench" / "RESULTS.md")
    assert any(fact.startswith("- Date:") for fact in facts)
    assert "throughput ≥ 90 % of bare" in figures
    assert {"bare app", "service"} <= figures.keys()
    assert not {"target", "row", "---"} & figures.keys()  # table heads are not rows


def test_before_and_after_sets_both_runs_side_by_side(tmp_path):
    old = tmp_path / "old.md"
    old.write_text(
        "- Date: then\n\n## Targets\n\n| target | measured |  |\n|---|---|---|\n"
        "| split | 9 ms | met |\n| gone | 1 ms | met |\n\n## 2. Throughput\n\n"
        "| in-process GET | per request | over bare |\n|---|---|---|\n| service | 120 µs | +60 µs |\n"
    )
    lines = run.before_and_after(run.earlier(old), {"split": "8 ms", "service": "110 µs", "new": "1×"})
    table = [line for line in lines if line.startswith("| ")]
    assert table[1:] == [
        "| split | 9 ms | 8 ms |",
        "| service | 120 µs | 110 µs |",
        "| new | — | 1× |",
        "| gone | 1 ms | — |",
    ]
    assert "- Date: then" in lines


def test_no_earlier_report_means_no_comparison(tmp_path):
    assert run.earlier(tmp_path / "missing.md") is None
