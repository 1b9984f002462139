"""The open benchmark's published numbers beside a study: exact intervals on hand-built runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fefm_lab.report.published import (
    PUBLISHED,
    mean_interval,
    published_comparison,
    welch_interval,
)
from fefm_lab.report.settings import ReportSettings
from fefm_lab.report.write import build_report, report_markdown


def runs(rows: list[tuple[str, str, str, int, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["dataset", "model", "ablation", "seed", "auc", "logloss"])
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    frame["stopped_early"] = 1.0
    frame["code_version"] = "c"
    frame["data_fingerprint"] = "d"
    frame["params"] = [{} for _ in range(len(frame))]
    frame["sweep"] = "s"
    frame["parent_run_id"] = ""
    frame["start_time"] = range(len(frame))
    return frame


STUDY = runs(
    [
        ("criteo_x1", "dcnv2", "none", 1, 0.8130, 0.4390),
        ("criteo_x1", "dcnv2", "none", 2, 0.8140, 0.4380),
        ("criteo_x1", "dcnv2", "none", 3, 0.8150, 0.4370),
        ("criteo_x1", "fm", "none", 1, 0.8000, 0.4500),
        ("criteo_x1", "deepfefm", "none", 1, 0.8141, 0.4379),
        ("criteo_x1", "deepfefm", "none", 2, 0.8143, 0.4377),
        ("criteo_x1", "deepfefm", "no_linear", 1, 0.8100, 0.4400),
        ("synthetic", "deepfm", "none", 1, 0.7, 0.5),
    ]
)


def test_published_table_states_source_and_runs():
    dcn = PUBLISHED[("criteo_x1", "dcnv2")]
    assert (dcn.auc, dcn.logloss, dcn.runs) == (0.813939, 0.438087, 5)
    assert (
        dcn.source == "https://github.com/reczoo/BARS/tree/main/ranking/ctr/DCNv2/DCNv2_criteo_x1"
    )
    assert PUBLISHED[("avazu_x1", "fm")].runs == 1
    assert math.isnan(PUBLISHED[("avazu_x1", "fm")].auc_std)
    assert {d for d, _ in PUBLISHED} == {"criteo_x1", "criteo_x4", "avazu_x1", "frappe_x1"}
    assert {m for _, m in PUBLISHED} == {"lr", "fm", "fwfm", "fmfm", "deepfm", "dcnv2"}


def test_mean_interval_is_the_t_interval():
    mean, low, high = mean_interval(np.array([0.8130, 0.8140, 0.8150]))
    half = stats.t.ppf(0.975, 2) * 0.001 / math.sqrt(3)  # sample std 0.001
    assert mean == pytest.approx(0.814, abs=1e-15)
    assert (low, high) == pytest.approx((0.814 - half, 0.814 + half), abs=1e-15)
    assert half == pytest.approx(0.0024841, abs=1e-7)
    assert all(math.isnan(v) for v in mean_interval(np.array([0.81]))[1:])


def test_welch_interval_by_hand():
    values = np.array([0.8130, 0.8140, 0.8150])
    ours, theirs = 1e-6 / 3, 0.00019976**2 / 5
    dof = (ours + theirs) ** 2 / (ours**2 / 2 + theirs**2 / 4)
    half = stats.t.ppf(0.975, dof) * math.sqrt(ours + theirs)
    low, high = welch_interval(values, 0.813939, 0.00019976, 5)
    assert dof == pytest.approx(2.0968, abs=1e-3)
    assert (low, high) == pytest.approx((0.000061 - half, 0.000061 + half), abs=1e-12)
    assert all(math.isnan(v) for v in welch_interval(values, 0.8, math.nan, 1))


def test_comparison_rows():
    table = published_comparison(STUDY).set_index(["dataset", "model"])
    dcn = table.loc[("criteo_x1", "dcnv2")]
    assert dcn["seeds"] == 3
    assert dcn["ours AUC [95% CI]"] == "0.81400 [0.81152, 0.81648]"
    assert dcn["published AUC"] == "0.81394 ± 0.00020 (mean of 5)"
    low, high = welch_interval(np.array([0.8130, 0.8140, 0.8150]), 0.813939, 0.00019976, 5)
    assert dcn["Δ AUC [95% CI]"] == f"+0.00006 [{low:+.5f}, {high:+.5f}]"
    assert dcn["flag"] == ""
    # FM: one seed here and one published run: no interval, both flagged
    fm = table.loc[("criteo_x1", "fm")]
    assert fm["ours AUC [95% CI]"] == "0.80000"
    assert fm["published AUC"] == "0.80216 (one run)"
    assert fm["Δ AUC [95% CI]"] == "-0.00216"
    assert fm["flag"].startswith("published: one run (its seed spread unknown")
    assert "ours: one seed" in fm["flag"]
    # DeepFEFM: the ablation-free runs only, and nothing published to compare with
    fefm = table.loc[("criteo_x1", "deepfefm")]
    assert (fefm["seeds"], fefm["published AUC"], fefm["flag"]) == (
        2,
        "none published",
        "no published number",
    )
    assert fefm["ours log loss [95% CI]"].startswith("0.43780 [")
    # the published models this study did not run, for context; no other dataset
    assert table.loc[("criteo_x1", "deepfm")]["ours AUC [95% CI]"] == "not run"
    assert table.loc[("criteo_x1", "deepfm")]["source"].endswith("DeepFM/DeepFM_criteo_x1")
    assert {d for d, _ in table.index} == {"criteo_x1"}
    assert len(table) == 3 + 4  # dcnv2, fm, deepfefm run; lr, fwfm, fmfm, deepfm not


def test_one_published_run_gives_our_interval_shifted():
    study = runs([("avazu_x1", "lr", "none", s, 0.75 + s * 1e-3, 0.37) for s in (1, 2, 3)])
    row = published_comparison(study).iloc[0]
    _, low, high = mean_interval(np.array([0.751, 0.752, 0.753]))
    assert row["Δ AUC [95% CI]"] == (
        f"{0.752 - 0.751625:+.5f} [{low - 0.751625:+.5f}, {high - 0.751625:+.5f}]"
    )


def test_report_markdown_has_the_section_unless_switched_off():
    markdown = report_markdown(build_report(STUDY, "t"))
    assert "**Beside the open benchmark.**" in markdown
    assert "| criteo_x1 | dcnv2 | 3 | 0.81400 [0.81152, 0.81648] |" in markdown
    assert "**Beside the open benchmark.**" not in report_markdown(
        build_report(STUDY, "t", ReportSettings(published=False))
    )
    off_benchmark = STUDY[STUDY["dataset"] == "synthetic"]
    assert "Beside the open benchmark" not in report_markdown(build_report(off_benchmark, "t"))


def test_html_page_has_the_section_too(tmp_path):
    from fefm_lab.report.write import HTML_NAME, write_files

    write_files(build_report(STUDY, "t"), tmp_path)
    page = (tmp_path / HTML_NAME).read_text()
    assert "<h2>Beside the open benchmark</h2>" in page
    table = page.split('<div class="wide"><table id="published">', 1)[1].split("</table>", 1)[0]
    assert '<td>dcnv2</td><td class="num">3</td><td>0.81400 [0.81152, 0.81648]</td>' in table
