"""What a planted teacher implies about an ablation study, and whether the study recovered it.

On the embedded synthetic data (fefm_lab.data.synthetic) the truth is known, and what it implies
depends on the teacher kind (`dataset.synthetic.teacher`, read from each run's params; runs from
before teachers had kinds used `pairs`).

`pairs` (the default): per-value linear terms, log terms of the integer columns and
PAIR_STRENGTH-weighted symmetric bilinear forms e_f^T W e_g on four planted field pairs, the FEFM
logit's own form. Trained to convergence:
- `shallow` (linear + FEFM logit, no DNN) is the teacher's own model family: not worse.
- `no_fefm_logit` keeps the FEFM layer feeding its pair values r to the DNN; the teacher's pair
  terms are a weighted sum of r, which a ReLU layer passes through exactly: not worse at
  convergence, though it learns them far more slowly.

`deep` (what `experiment=synthetic_ablation` trains on): eight planted pairs plus a threshold
t * sign(z) of a centred sum z over six complete fields.
- `shallow`: worse. sign(z) depends on six fields at once; per-field and per-pair terms (all a
  linear + FEFM model can express) leave about a quarter of its variance (24% at the preset's
  80k rows; a free table per field pair, which FEFM's rank-k forms only approximate), which only
  a DNN over the field embeddings can take.
- `no_fefm_logit`: not worse at convergence, worse at a fixed budget of epochs. Its DNN must
  carry the eight pair terms (a signed sum of 8 of the P pair values r) beside the threshold,
  through ReLU layers whose input weights start at 1/sqrt(fan-in), from pair values that start
  near zero (quadratic in embeddings initialised at 1e-4); the direct FEFM logit adds each r
  with weight one. A loss of learning speed, not of expressiveness (a ReLU layer passes a
  weighted sum of r through), so at convergence the teacher implies it not worse, and after
  a fixed budget of epochs (`report.budget_epochs`, fixed from `none`'s curve alone) worse.
  Under early stopping the race between its DNN and the stopping rule decides: measured with
  experiment=synthetic_ablation (80k rows, seeds 1-5, patience 3) it learnt the pairs on seeds
  1, 4 and 5 (test AUC 0.864-0.878, as high as `none`'s 0.853-0.873) and stopped first on seeds
  2 and 3 (0.817-0.822).
Neither teacher implies an order among the other ablations.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fefm_lab.report.statistics import BETTER, WORSE
from fefm_lab.report.verdicts import EQUIVALENT

NOT_WORSE = "not worse"
NO_VERDICT = "no verdict (fewer than two paired seeds)"
# Verdicts that show an expectation, and those that contradict it (the rest leave it open).
SHOWN = {WORSE: {WORSE}, BETTER: {BETTER}, NOT_WORSE: {BETTER, EQUIVALENT}}
CONTRADICTS = {WORSE: {BETTER, EQUIVALENT}, BETTER: {WORSE, EQUIVALENT}, NOT_WORSE: {WORSE}}
AS_IMPLIED, NOT_AS_IMPLIED, NOT_SHOWN, NOT_CHECKED = (
    "as implied", "**not as implied**", "not shown", "not checked"
)  # fmt: skip
CONVERGED, BUDGET = "converged", "budget"
# The metrics each view compares, and how the report names them.
VIEW_METRICS = {
    CONVERGED: {"auc": "test AUC", "logloss": "test log loss"},
    BUDGET: {"budget_auc": "validation AUC", "budget_logloss": "validation log loss"},
}
VIEW_NAMES = {CONVERGED: "at convergence", BUDGET: "at the budget"}
TEACHER_PARAM = "dataset.synthetic.teacher"
DEFAULT_TEACHER = "pairs"
# (teacher kind, model) -> {ablation: {view: what the planted teacher implies against `none`}}
EXPECTED_VERDICTS: dict[tuple[str, str], dict[str, dict[str, str]]] = {
    ("pairs", "deepfefm"): {
        "no_fefm_logit": {CONVERGED: NOT_WORSE},
        "shallow": {CONVERGED: NOT_WORSE},
    },
    ("deep", "deepfefm"): {
        "no_fefm_logit": {CONVERGED: NOT_WORSE, BUDGET: WORSE},
        "shallow": {CONVERGED: WORSE},
    },
}
# Why, in a few words (the module docstring has the argument).
REASONS: dict[tuple[str, str], dict[str, str]] = {
    ("pairs", "deepfefm"): {
        "no_fefm_logit": "its DNN receives the FEFM pair values, whose weighted sum is the "
        "teacher's pair terms",
        "shallow": "linear + FEFM logit is the teacher's own model family",
    },
    ("deep", "deepfefm"): {
        "no_fefm_logit": "eight strong pair terms reach the output only through the DNN, "
        "which can express them but learns them more slowly than the direct FEFM logit",
        "shallow": "no per-field or per-pair term expresses the threshold of a six-field sum",
    },
}


@dataclass(frozen=True)
class ExpectationCheck:
    dataset: str
    model: str
    teacher: str
    ablation: str
    view: str  # CONVERGED (test metrics) or BUDGET (validation metrics after the budget)
    expected: str
    observed: dict[str, str]  # metric -> verdict ("" when not available)
    why_not_checked: str = ""  # set when the study could not check it

    @property
    def status(self) -> str:
        if self.why_not_checked:
            return NOT_CHECKED
        verdicts = set(self.observed.values())
        if verdicts <= SHOWN[self.expected]:
            return AS_IMPLIED
        if verdicts & CONTRADICTS[self.expected]:
            return NOT_AS_IMPLIED
        return NOT_SHOWN

    @property
    def recovered(self) -> bool:
        return self.status == AS_IMPLIED


def synthetic_teachers(runs: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    """(dataset, model) -> the teacher kinds of its runs on embedded synthetic data."""
    teachers: dict[tuple[str, str], set[str]] = {}
    if runs.empty:
        return teachers
    for dataset, model, params in zip(runs["dataset"], runs["model"], runs["params"], strict=True):
        if params.get("dataset.format") != "synthetic":
            continue
        kind = params.get(TEACHER_PARAM, DEFAULT_TEACHER)
        teachers.setdefault((dataset, model), set()).add(kind)
    return teachers


def check_expectations(table: pd.DataFrame, runs: pd.DataFrame) -> list[ExpectationCheck]:
    """One check per expected verdict and view, for each (dataset, model) of synthetic runs.

    A group whose runs mix teacher kinds gets no check (its comparisons mean nothing). An
    ablation the study did not run, or a budget view the report did not make, is a check
    marked not checked, with the reason.
    """
    checks = []
    for (dataset, model), kinds in synthetic_teachers(runs).items():
        teacher = next(iter(kinds))
        expected = EXPECTED_VERDICTS.get((teacher, model))
        if len(kinds) != 1 or expected is None:
            continue
        rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
        rows = rows.set_index("ablation")
        for ablation, views in expected.items():
            for view, verdict in views.items():
                metrics = VIEW_METRICS[view]
                observed = {metric: _verdict(rows, ablation, metric) for metric in metrics}
                why = ""
                if ablation not in rows.index:
                    why = "the study did not run it"
                elif any(f"{metric}_verdict" not in rows for metric in metrics):
                    why = "no fixed budget was set (report.budget_epochs)"
                checks.append(
                    ExpectationCheck(
                        dataset, model, teacher, ablation, view, verdict, observed, why
                    )
                )
    return checks


def _verdict(rows: pd.DataFrame, ablation: str, metric: str) -> str:
    """The table's verdict; NO_VERDICT when it has none (one seed), "" when not available."""
    if ablation not in rows.index or f"{metric}_verdict" not in rows:
        return ""
    verdict = rows.loc[ablation, f"{metric}_verdict"]
    if rows.loc[ablation, f"{metric}_paired_n"] < 2 or not isinstance(verdict, str):
        return NO_VERDICT
    return verdict or NO_VERDICT


def _expectation(check: ExpectationCheck) -> str:
    return f"`{check.ablation}` {check.expected} than `none` {VIEW_NAMES[check.view]}"


def expectation_text(checks: list[ExpectationCheck]) -> str:
    """Markdown: what the teacher implies, then per ablation and view what the study found."""
    if not checks:
        return ""
    lines = []
    for (dataset, model, teacher), group in _by_group(checks).items():
        reasons = REASONS.get((teacher, model), {})
        implied = "; ".join(
            _expectation(c)
            + (f" ({reasons[c.ablation]})" if c.ablation in reasons and c.view == CONVERGED else "")
            for c in group
        )
        lines.append(
            f"**Planted teacher ({dataset}, {model}, teacher `{teacher}`).** The teacher "
            f"implies: {implied}. It implies no order among the other ablations "
            "(fefm_lab/report/expectations.py has the argument)."
        )
        for check in group:
            if check.why_not_checked:
                lines.append(
                    f"- `{check.ablation}` {VIEW_NAMES[check.view]}: not checked: "
                    f"{check.why_not_checked}."
                )
                continue
            names = VIEW_METRICS[check.view]
            found = "; ".join(f"{names[m]} {v}" for m, v in check.observed.items())
            lines.append(
                f"- `{check.ablation}` {VIEW_NAMES[check.view]} (expected {check.expected}): "
                f"{found}: {check.status}."
            )
        lines.append("- " + _conclusion(group))
    return "\n".join(lines)


def _conclusion(group: list[ExpectationCheck]) -> str:
    """One sentence: recovered, contradicted, or left open, naming what was not checked."""

    def listing(status: str) -> str:
        return ", ".join(
            f"`{c.ablation}` {VIEW_NAMES[c.view]}" for c in group if c.status == status
        )

    checked = [c for c in group if c.status != NOT_CHECKED]
    unchecked = f" Not checked: {listing(NOT_CHECKED)}." if len(checked) < len(group) else ""
    if not checked:
        return "The study checked none of what the teacher implies." + unchecked
    if any(c.status == NOT_AS_IMPLIED for c in checked):
        return (
            "The study does **not** recover what the teacher implies "
            f"(contradicted: {listing(NOT_AS_IMPLIED)})." + unchecked
        )
    if all(c.status == AS_IMPLIED for c in checked):
        scope = "" if not unchecked else " for what it checked"
        return f"The study recovers what the teacher implies{scope}." + unchecked
    return (
        "The study contradicts nothing the teacher implies but does not show all of it "
        f"(not shown: {listing(NOT_SHOWN)})." + unchecked
    )


def _by_group(
    checks: list[ExpectationCheck],
) -> dict[tuple[str, str, str], list[ExpectationCheck]]:
    groups: dict[tuple[str, str, str], list[ExpectationCheck]] = {}
    for check in checks:
        groups.setdefault((check.dataset, check.model, check.teacher), []).append(check)
    return groups
