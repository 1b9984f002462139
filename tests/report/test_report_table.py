"""The ablation table's numbers, checked against float64 references computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fefm_lab.markdown import fixed_decimals, markdown_table
from fefm_lab.report.ablation_table import (
    ablation_table,
    consistency_warnings,
    latest_per_seed,
    paired,
    paper_gap_seeds,
    training_note,
)
from fefm_lab.report.expectations import NO_VERDICT, check_expectations, expectation_text
from fefm_lab.report.paper import paper_numbers, paper_settings
from fefm_lab.report.settings import ReportSettings
from fefm_lab.report.statistics import minimum_detectable_difference, seeds_needed
from fefm_lab.report.write import readable_table

BASE_AUC = {1: 0.80, 2: 0.81, 3: 0.79}
ABLATED_AUC = {1: 0.795, 2: 0.806, 3: 0.788}
BASE_LOSS = {1: 0.45, 2: 0.44, 3: 0.46}
ABLATED_LOSS = {1: 0.452, 2: 0.441, 3: 0.463}


def _runs() -> pd.DataFrame:
    rows = []
    for ablation, aucs, losses in (
        ("none", BASE_AUC, BASE_LOSS),
        ("no_linear", ABLATED_AUC, ABLATED_LOSS),
    ):
        for seed in (1, 2, 3):
            rows.append(
                {
                    "dataset": "synthetic",
                    "model": "deepfefm",
                    "ablation": ablation,
                    "seed": seed,
                    "auc": aucs[seed],
                    "logloss": losses[seed],
                    "params": {},
                }
            )
    # a third ablation with only two seeds: pairs over the seeds both have
    rows += [
        {"dataset": "synthetic", "model": "deepfefm", "ablation": "shallow", "seed": s,
         "auc": a, "logloss": 0.5, "params": {}}
        for s, a in ((1, 0.70), (3, 0.72))
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_means_stds_and_differences_match_numpy() -> None:
    table = ablation_table(_runs()).set_index("ablation")
    assert list(table.index) == ["none", "no_linear", "shallow"]
    base = np.array(list(BASE_AUC.values()), dtype=np.float64)
    ablated = np.array(list(ABLATED_AUC.values()), dtype=np.float64)
    row = table.loc["no_linear"]
    assert row["runs"] == 3
    assert row["auc_mean"] == pytest.approx(ablated.mean(), abs=1e-15)
    assert row["auc_std"] == pytest.approx(ablated.std(ddof=1), abs=1e-15)
    assert row["auc_diff"] == pytest.approx(ablated.mean() - base.mean(), abs=1e-15)
    differences = ablated - base
    assert row["auc_paired_n"] == 3
    assert row["auc_paired_diff"] == pytest.approx(differences.mean(), abs=1e-15)
    assert row["auc_paired_std"] == pytest.approx(differences.std(ddof=1), abs=1e-15)
    reference = stats.ttest_rel(ablated, base)
    assert row["auc_t"] == pytest.approx(reference.statistic, rel=1e-12)
    assert row["auc_p"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert table.loc["none", "auc_diff"] == 0.0
    assert math.isnan(table.loc["none", "auc_t"])


def test_pairs_only_common_seeds() -> None:
    row = ablation_table(_runs()).set_index("ablation").loc["shallow"]
    assert row["runs"] == 2 and row["seeds"] == "1,3"
    assert row["auc_paired_n"] == 2
    assert row["auc_paired_diff"] == pytest.approx(((0.70 - 0.80) + (0.72 - 0.79)) / 2)
    # difference of means uses all baseline seeds
    assert row["auc_diff"] == pytest.approx(0.71 - np.mean(list(BASE_AUC.values())))


def test_paired_with_one_seed_has_no_statistic() -> None:
    result = paired(pd.Series([0.5], index=[1]), pd.Series([0.4], index=[1]))
    assert result.n == 1 and result.mean == pytest.approx(0.1)
    assert math.isnan(result.std) and math.isnan(result.t)


def test_paired_aligns_by_seed_not_by_position() -> None:
    values = pd.Series([0.70, 0.72, 0.75], index=[3, 1, 2])
    base = pd.Series([0.80, 0.79, 0.81], index=[1, 2, 3])
    result = paired(values, base)
    # seed 1: .72-.80, seed 2: .75-.79, seed 3: .70-.81
    assert result.mean == pytest.approx((-0.08 - 0.04 - 0.11) / 3, abs=1e-15)


def test_paper_numbers_only_for_the_paper_settings() -> None:
    settings = paper_settings("criteo")
    assert paper_numbers("criteo", "deepfefm", "no_linear", settings) == (0.81386, 0.43793)
    assert (
        paper_numbers("criteo", "deepfefm", "none", {**settings, "model.embedding_dim": "8"})
        is None
    )
    assert paper_numbers("synthetic", "deepfefm", "none", settings) is None
    assert paper_numbers("criteo", "fm", "none", settings) is None


def test_markdown_rendering() -> None:
    frame = pd.DataFrame({"name": ["a|b", "c"], "value": [0.123456, math.nan]})
    assert markdown_table(frame, float_format=fixed_decimals(3)) == (
        "| name | value |\n|---|---:|\n| a\\|b | 0.123 |\n| c |  |"
    )
    table = ablation_table(_runs())
    readable = readable_table(table).set_index("ablation")
    assert readable.loc["no_linear", "test AUC"] == "0.79633 ± 0.00907"
    # the interval the verdict reads: 2 ablations x 2 metrics, level 1 - 0.05 / 4
    interval = stats.ttest_rel(list(ABLATED_AUC.values()), list(BASE_AUC.values()))
    low, high = interval.confidence_interval(1 - 0.05 / 4)
    assert readable.loc["no_linear", "Δ test AUC [CI]"] == f"-0.00367 [{low:+.5f}, {high:+.5f}]"
    assert readable.loc["none", "Δ test AUC [CI]"] == "baseline"
    assert readable.loc["none", "test AUC verdict"] == ""
    needed = int(table.set_index("ablation").loc["no_linear", "auc_seeds_needed"])
    assert readable.loc["no_linear", "test AUC verdict"] == f"not resolved (~{needed} seeds)"
    assert readable.loc["shallow", "seeds"] == 2
    assert "paper AUC" not in readable.columns


def test_a_rerun_with_other_settings_replaces_the_older_runs() -> None:
    runs = _runs().assign(start_time=range(len(_runs())))
    rerun = runs[runs["ablation"] == "none"].assign(
        auc=0.9, start_time=lambda f: f.start_time + 100
    )
    newest = latest_per_seed(pd.concat([runs, rerun], ignore_index=True))
    assert len(newest) == len(runs)
    assert list(newest[newest["ablation"] == "none"]["auc"]) == [0.9, 0.9, 0.9]
    table = ablation_table(newest).set_index("ablation")
    assert table.loc["none", "runs"] == 3 and table.loc["none", "auc_mean"] == pytest.approx(0.9)


def _study(shifts: dict[str, float], seeds: int = 5, noise: float = 0.002) -> pd.DataFrame:
    """Per-seed AUC = 0.78 + seed effect + the ablation's shift + small noise (fixed draws)."""
    rng = np.random.default_rng(11)
    seed_effect = rng.normal(0, 0.01, size=seeds)
    rows = []
    for ablation, shift in shifts.items():
        for seed in range(seeds):
            auc = 0.78 + seed_effect[seed] + shift + rng.normal(0, noise)
            rows.append(
                {"dataset": "synthetic", "model": "deepfefm", "ablation": ablation,
                 "seed": seed + 1, "auc": auc, "logloss": 0.43 - auc / 2, "params": {},
                 "code_version": "c1", "data_fingerprint": f"f{seed}"}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_verdicts_read_simultaneous_intervals_over_every_test() -> None:
    runs = _study({"none": 0.0, "no_fefm_logit": -0.03, "no_linear": 0.0005, "shallow": -0.008})
    table = ablation_table(runs).set_index("ablation")
    base = runs[runs.ablation == "none"].sort_values("seed")
    level = 0.05 / 6  # 3 ablations x 2 metrics, one look
    for ablation in ("no_fefm_logit", "no_linear", "shallow"):
        ablated = runs[runs.ablation == ablation].sort_values("seed")
        reference = stats.ttest_rel(ablated["auc"].to_numpy(), base["auc"].to_numpy())
        assert table.loc[ablation, "auc_p"] == pytest.approx(reference.pvalue, rel=1e-9)
        low, high = reference.confidence_interval(0.95)
        assert table.loc[ablation, "auc_ci_low"] == pytest.approx(low, rel=1e-9)
        assert table.loc[ablation, "auc_ci_high"] == pytest.approx(high, rel=1e-9)
        low, high = reference.confidence_interval(1 - level)
        assert table.loc[ablation, "auc_vci_low"] == pytest.approx(low, rel=1e-9)
        assert table.loc[ablation, "auc_vci_high"] == pytest.approx(high, rel=1e-9)
        assert table.loc[ablation, "auc_level"] == pytest.approx(level, rel=1e-15)
        assert table.loc[ablation, "auc_margin"] == 0.001
    assert table.loc["no_fefm_logit", "auc_verdict"] == "worse"
    # -0.0101 [-0.0139, -0.0063] with 5 seeds; no_linear's [-0.0041, +0.0055] straddles both
    assert table.loc["shallow", "auc_verdict"] == "worse"
    assert table.loc["no_linear", "auc_verdict"] == "not resolved"
    assert table.loc["no_linear", "auc_seeds_needed"] == 23
    # log loss = 0.43 - auc / 2: lower is better, so the same ablations are worse there too
    assert table.loc["no_fefm_logit", "logloss_verdict"] == "worse"
    assert table.loc["none", "auc_verdict"] == "" and not table.loc["none", "auc_settled"]
    # a wider margin makes no_linear equivalent; planned looks widen the intervals
    wide = ablation_table(runs, ReportSettings(margins={"auc": 0.01, "logloss": 0.01}))
    assert wide.set_index("ablation").loc["no_linear", "auc_verdict"] == "equivalent"
    looks = ablation_table(runs, ReportSettings(looks=3)).set_index("ablation")
    assert looks.loc["shallow", "auc_level"] == pytest.approx(0.05 / 18, rel=1e-15)
    # the resolvable difference: power 0.8 at the observed paired spread over 5 seeds
    spread = table.loc["shallow", "auc_paired_std"]
    assert table.loc["shallow", "auc_mdd"] == pytest.approx(
        minimum_detectable_difference(spread, 5), rel=1e-12
    )


def test_consistency_warnings_name_code_versions_and_unpaired_data() -> None:
    runs = _study({"none": 0.0, "shallow": -0.01}, seeds=3)
    assert consistency_warnings(runs) == []
    runs.loc[(runs.ablation == "shallow") & (runs.seed == 2), "code_version"] = "c2"
    runs.loc[(runs.ablation == "shallow") & (runs.seed == 3), "data_fingerprint"] = "other"
    warnings = consistency_warnings(runs)
    assert warnings == [
        "dataset=synthetic model=deepfefm: the compared runs differ in code versions "
        "(tag code_version): c1 (5 runs), c2 (1 runs)",
        "dataset=synthetic seed=3: the compared runs differ in prepared data "
        "(tag data_fingerprint): f2 (1 runs), other (1 runs)",
    ]


def _synthetic(runs: pd.DataFrame, teacher: str | None) -> pd.DataFrame:
    """`runs` as runs on embedded synthetic data with `teacher` (None: logged before teachers)."""
    params = {"dataset.format": "synthetic"}
    if teacher is not None:
        params["dataset.synthetic.teacher"] = teacher
    return runs.assign(params=[dict(params) for _ in range(len(runs))])


def test_pairs_teacher_expects_no_fefm_logit_and_shallow_not_worse() -> None:
    shifts = {"none": 0.0, "no_fefm_logit": 0.0005, "shallow": 0.0, "no_linear": -0.03}
    as_implied = _synthetic(_study(shifts, noise=0.0001), None)
    checks = check_expectations(ablation_table(as_implied), as_implied)
    assert [(c.teacher, c.ablation, c.view, c.expected, c.status) for c in checks] == [
        ("pairs", "no_fefm_logit", "converged", "not worse", "as implied"),
        ("pairs", "shallow", "converged", "not worse", "as implied"),
    ]
    assert checks[1].observed == {"auc": "equivalent", "logloss": "equivalent"}
    text = expectation_text(checks)
    assert "teacher `pairs`" in text
    assert "`shallow` not worse than `none` at convergence" in text
    assert "- The study recovers what the teacher implies." in text
    # at the noise of 0.002 neither is resolved: nothing contradicted, nothing shown
    noisy = _synthetic(_study(shifts), "pairs")
    checks = check_expectations(ablation_table(noisy), noisy)
    assert [c.status for c in checks] == ["not shown", "not shown"]
    assert "- The study contradicts nothing the teacher implies but does not show all of it" in (
        expectation_text(checks)
    )
    harmful = _synthetic(_study({"none": 0.0, "no_fefm_logit": -0.03, "shallow": 0.0}), "pairs")
    checks = check_expectations(ablation_table(harmful), harmful)
    assert checks[0].observed == {"auc": "worse", "logloss": "worse"}
    assert checks[0].status == "**not as implied**" and not checks[0].recovered
    text = expectation_text(checks)
    assert (
        "- `no_fefm_logit` at convergence (expected not worse): test AUC worse; "
        "test log loss worse: **not as implied**." in text
    )
    assert "does **not** recover what the teacher implies" in text
    # real data has no planted teacher: no check
    other_data = harmful.assign(dataset="criteo", params=[{"dataset.format": "criteo"}] * 15)
    assert check_expectations(ablation_table(other_data), other_data) == []


def _with_budget(runs: pd.DataFrame, shifts: dict[str, float]) -> pd.DataFrame:
    """Budget metrics: the test AUC shifted further per ablation (log loss follows)."""
    budget_auc = runs["auc"] + runs["ablation"].map(shifts).fillna(0.0)
    return runs.assign(budget_auc=budget_auc, budget_logloss=0.43 - budget_auc / 2)


def test_deep_teacher_expects_shallow_worse_and_no_fefm_logit_slower() -> None:
    # shallow 0.02 worse; no_fefm_logit the same at convergence, 0.03 worse at the budget
    runs = _synthetic(
        _study({"none": 0.0, "no_fefm_logit": 0.0, "shallow": -0.02, "asymmetric": 0.0}, 5,
               noise=0.0001),
        "deep",
    )  # fmt: skip
    runs = _with_budget(runs, {"no_fefm_logit": -0.03})
    table = ablation_table(runs)
    checks = check_expectations(table, runs)
    assert [(c.ablation, c.view, c.expected, c.observed, c.status) for c in checks] == [
        ("no_fefm_logit", "converged", "not worse",
         {"auc": "equivalent", "logloss": "equivalent"}, "as implied"),
        ("no_fefm_logit", "budget", "worse",
         {"budget_auc": "worse", "budget_logloss": "worse"}, "as implied"),
        ("shallow", "converged", "worse", {"auc": "worse", "logloss": "worse"}, "as implied"),
    ]  # fmt: skip
    # 3 ablations x 4 metrics (test and budget) in one family
    assert table["auc_level"].dropna().to_numpy() == pytest.approx([0.05 / 12] * 3, rel=1e-15)
    text = expectation_text(checks)
    assert "teacher `deep`" in text and "`shallow` worse than `none` at convergence" in text
    assert "`no_fefm_logit` worse than `none` at the budget" in text
    assert (
        "- `no_fefm_logit` at the budget (expected worse): validation AUC worse; "
        "validation log loss worse: as implied." in text
    )
    assert "- The study recovers what the teacher implies." in text
    # without a budget view, no_fefm_logit's budget expectation is not checked
    runs = runs.drop(columns=["budget_auc", "budget_logloss"])
    checks = check_expectations(ablation_table(runs), runs)
    assert checks[1].status == "not checked"
    text = expectation_text(checks)
    assert (
        "- `no_fefm_logit` at the budget: not checked: no fixed budget was set "
        "(report.budget_epochs)." in text
    )
    assert (
        "- The study recovers what the teacher implies for what it checked. Not checked: "
        "`no_fefm_logit` at the budget." in text
    )


def test_an_ablation_the_sweep_did_not_run_is_not_checked() -> None:
    # a sweep of none and no_fefm_logit only: shallow's expectation is not checked, not failed
    runs = _synthetic(_study({"none": 0.0, "no_fefm_logit": 0.0}, noise=0.0001), "deep")
    runs = _with_budget(runs, {"no_fefm_logit": -0.03})
    checks = check_expectations(ablation_table(runs), runs)
    assert [(c.ablation, c.view, c.status) for c in checks] == [
        ("no_fefm_logit", "converged", "as implied"),
        ("no_fefm_logit", "budget", "as implied"),
        ("shallow", "converged", "not checked"),
    ]
    text = expectation_text(checks)
    assert "- `shallow` at convergence: not checked: the study did not run it." in text
    assert "not as implied" not in text and "does **not**" not in text
    assert text.endswith(
        "- The study recovers what the teacher implies for what it checked. Not checked: "
        "`shallow` at convergence."
    )


def test_one_seed_gives_no_verdict_to_recover() -> None:
    single = _synthetic(_study({"none": 0.0, "no_fefm_logit": -0.07, "shallow": -0.01}, 1), "deep")
    checks = check_expectations(ablation_table(single), single)
    assert [c.observed["auc"] for c in checks if c.view == "converged"] == [NO_VERDICT] * 2
    assert not any(c.recovered for c in checks)
    assert "- `shallow` at convergence (expected worse): test AUC no verdict (fewer than " in (
        expectation_text(checks)
    )


def test_runs_of_mixed_teachers_get_no_expectation() -> None:
    runs = _study({"none": 0.0, "shallow": -0.02})
    mixed = pd.concat(
        [_synthetic(runs[runs.ablation == "none"], "deep"),
         _synthetic(runs[runs.ablation == "shallow"], "pairs")]
    )  # fmt: skip
    assert check_expectations(ablation_table(mixed), mixed) == []


def test_training_note_names_runs_that_reached_the_epoch_cap() -> None:
    runs = _study({"none": 0.0, "shallow": 0.0}, seeds=2).assign(stopped_early=1.0)
    assert training_note(runs) == (
        "**Training.** Early stopping ended all 4 runs (none reached its epoch cap)."
    )
    runs.loc[(runs.ablation == "shallow") & (runs.seed == 2), "stopped_early"] = 0.0
    assert training_note(runs) == (
        "**Training.** 1 of 4 runs reached trainer.max_epochs before early stopping ended them, "
        "so they may be undertrained: deepfefm shallow seed 2."
    )
    assert training_note(runs.drop(columns="stopped_early")) == ""


def test_seeds_needed_for_the_paper_gaps() -> None:
    runs = _study({"none": 0.0, "no_fefm_logit": -0.03, "no_linear": 0.0, "shallow": -0.01})
    table = ablation_table(runs)
    gaps = paper_gap_seeds(table).set_index("ablation")
    assert list(gaps.index) == ["no_fefm_logit", "no_linear"]  # shallow is not in Table 5
    spread = table.set_index("ablation").loc["no_linear", "auc_paired_std"]
    assert gaps.loc["no_linear", "criteo gap"] == pytest.approx(0.81386 - 0.81405)
    assert gaps.loc["no_linear", "avazu gap"] == pytest.approx(0.77768 - 0.77801)
    level = 0.05 / 6  # the verdicts' level: 3 ablations x 2 metrics, one look
    assert gaps.loc["no_linear", "criteo seeds needed"] == str(
        seeds_needed(0.81386 - 0.81405, spread, level)
    )


def _power(gap: float, std: float, n: int, level: float) -> float:
    """The two-sided paired t test's power at `level`, from scipy's noncentral t directly."""
    critical = stats.t.ppf(1 - level / 2, n - 1)
    shift = abs(gap) * math.sqrt(n) / std
    return stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift)


@pytest.mark.parametrize(
    ("looks", "level", "needed", "caption"),
    [
        # 2 ablations x 2 metrics, one look: 0.05 / 4 (no_linear at one test's 0.05: 727, 243)
        (1, 0.0125, {"no_linear": (1033, 345), "no_fefm_logit": (520, 27)},
         "0.05/(4 tests) = 0.0125"),
        (3, 0.05 / 12, {"no_linear": (1273, 425), "no_fefm_logit": (641, 34)},
         "0.05/(4 tests × 3 planned looks) = 0.00417"),
    ],
)  # fmt: skip
def test_seeds_for_the_paper_gaps_at_the_level_the_verdicts_read(
    looks: int, level: float, needed: dict[str, tuple[int, int]], caption: str
) -> None:
    from fefm_lab.report.write import gap_explanation

    # paired AUC differences by hand: no_linear +2, -1, +1, -2 (x 1e-3; mean 0, std
    # sqrt(10/3)e-3), no_fefm_logit -10, -12, -8, -10 (std sqrt(8/3)e-3)
    base = [0.800, 0.810, 0.790, 0.805]
    shifts = {
        "none": [0.0] * 4,
        "no_linear": [0.002, -0.001, 0.001, -0.002],
        "no_fefm_logit": [-0.010, -0.012, -0.008, -0.010],
    }
    runs = pd.DataFrame(
        [
            {"dataset": "synthetic", "model": "deepfefm", "ablation": ablation, "seed": seed,
             "auc": b + d, "logloss": 0.43 - (b + d) / 2, "params": {}}
            for ablation, ds in shifts.items()
            for seed, (b, d) in enumerate(zip(base, ds, strict=True), start=1)
        ]
    )  # fmt: skip
    settings = ReportSettings(looks=looks)
    table = ablation_table(runs, settings)
    assert table["auc_level"].dropna().tolist() == pytest.approx([level, level], rel=1e-15)
    gaps = paper_gap_seeds(table).set_index("ablation")
    spreads = {"no_linear": math.sqrt(10 / 3) * 1e-3, "no_fefm_logit": math.sqrt(8 / 3) * 1e-3}
    for ablation, (criteo, avazu) in needed.items():
        row, std = gaps.loc[ablation], spreads[ablation]
        assert row["paired std Δ AUC"] == pytest.approx(std, rel=1e-9)
        assert (row["criteo seeds needed"], row["avazu seeds needed"]) == (str(criteo), str(avazu))
        for gap, n in ((row["criteo gap"], criteo), (row["avazu gap"], avazu)):
            assert _power(gap, std, n - 1, level) < 0.8 <= _power(gap, std, n, level)
        assert _power(row["resolvable Δ AUC"], std, 4, level) == pytest.approx(0.8, abs=1e-9)
    text = gap_explanation(table, settings)
    assert f"the level the verdicts read, {caption} (Bonferroni" in text
    assert "with power 0.8" in text
