"""The `prepare` part's summaries: the run of median peak, the per-phase peak text."""

from __future__ import annotations

from scripts.bench.prepare import GIB, median_run, peaks_text


def _run(peak: int, seconds: float) -> dict:
    return {"peak_rss_bytes": peak, "seconds": seconds, "phases": {"pass1": seconds / 2}}


def test_median_run_is_the_run_of_median_peak_and_keeps_every_run():
    runs = [_run(500, 30.0), _run(400, 50.0), _run(560, 20.0)]
    chosen = median_run(runs)
    assert chosen["peak_rss_bytes"] == 500
    assert chosen["seconds"] == 30.0 and chosen["phases"] == {"pass1": 15.0}
    assert chosen["median_seconds"] == 30.0
    assert chosen["runs"] == [
        {"peak_rss_bytes": 500, "seconds": 30.0},
        {"peak_rss_bytes": 400, "seconds": 50.0},
        {"peak_rss_bytes": 560, "seconds": 20.0},
    ]
    assert "runs" not in runs[0]  # the runs themselves are left as they were


def test_median_run_of_an_even_count_takes_the_lower_middle_and_of_one_that_run():
    assert median_run([_run(7, 1.0), _run(3, 2.0)])["peak_rss_bytes"] == 3
    assert median_run([_run(9, 4.0)])["median_seconds"] == 4.0


def test_peaks_text_shows_the_passes_in_gib():
    peaks = {
        "start": GIB // 8,
        "count_rows": GIB // 8,
        "pass1": GIB // 2,
        "vocabularies": 3 * GIB // 4,
    }
    peaks["pass2"] = 3 * GIB // 4
    assert peaks_text(peaks) == "pass1 0.500, vocabularies 0.750, pass2 0.750"
    assert peaks_text({}) == ""
