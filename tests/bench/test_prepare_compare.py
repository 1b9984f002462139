"""The side-by-side preparation comparison runs both versions and checks their output bytes."""

from __future__ import annotations

import pytest

from scripts.bench import prepare_compare


@pytest.mark.slow
def test_compare_with_head_prepares_twice_and_finds_the_same_bytes(tmp_path, capsys):
    code = prepare_compare.main(
        ["--baseline", "HEAD", "--rows", "3000", "--rounds", "1", "--work", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| baseline") or line.startswith("| current")
    ]
    assert [row.split(" | ")[0] for row in rows] == ["| baseline HEAD", "| current"]
    digests = {row.rstrip(" |").rsplit(" | ", 1)[1] for row in rows}
    assert len(digests) == 1 and len(digests.pop()) == 16
    # each run's running peak at the end of each phase, from its manifest, in GiB
    for row in rows:
        peaks = row.split(" | ")[6].split(", ")
        assert [peak.split()[0] for peak in peaks] == ["pass1", "vocabularies", "pass2"]
        values = [float(peak.split()[1]) for peak in peaks]
        assert 0 < values[0] <= values[1] <= values[2] < 4
    assert "3,000 rows, 1 round(s)" in out
    assert "Prepared files byte-identical across all runs." in out
    assert not list(tmp_path.rglob("prepared*"))  # each run's output removed
