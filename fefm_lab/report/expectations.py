"""What a planted teacher implies about an ablation study, and whether the study recovered it.

On the embedded synthetic data (fefm_lab.data.synthetic) the truth is known: the teacher's logit
is per-value linear terms plus PAIR_STRENGTH-weighted symmetric bilinear forms e_f^T W e_g on four
planted field pairs, which is the FEFM logit's own form. Taking the FEFM logit away
(`no_fefm_logit`) leaves those pair terms to the DNN, which must rebuild sums of products through
ReLU layers; the shallow model (`shallow`, no DNN) is the other ablation the study is built to
show as harmful (issue 11). Both must come out worse than `none`, resolved, on test AUC and log
loss. The other ablations change how the same signal is reached; the teacher implies no ranking
for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fefm_lab.report.statistics import WORSE

# (dataset name, model) -> {ablation: the verdict the planted teacher implies against `none`}
EXPECTED_VERDICTS: dict[tuple[str, str], dict[str, str]] = {
    ("synthetic", "deepfefm"): {"no_fefm_logit": WORSE, "shallow": WORSE},
}
METRIC_NAMES = {"auc": "test AUC", "logloss": "test log loss"}


@dataclass(frozen=True)
class ExpectationCheck:
    dataset: str
    model: str
    ablation: str
    expected: str
    observed: dict[str, str]  # metric -> verdict ("" when the ablation did not run)

    @property
    def recovered(self) -> bool:
        return all(v == self.expected for v in self.observed.values())


def check_expectations(table: pd.DataFrame) -> list[ExpectationCheck]:
    """One check per expected verdict whose (dataset, model) is in the table."""
    checks = []
    present = set(zip(table["dataset"], table["model"], strict=True))
    for (dataset, model), expected in EXPECTED_VERDICTS.items():
        if (dataset, model) not in present:
            continue
        rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
        rows = rows.set_index("ablation")
        for ablation, verdict in expected.items():
            observed = {
                metric: (str(rows.loc[ablation, f"{metric}_verdict"]) if ablation in rows.index
                         else "")
                for metric in METRIC_NAMES
            }  # fmt: skip
            checks.append(ExpectationCheck(dataset, model, ablation, verdict, observed))
    return checks


def expectation_text(checks: list[ExpectationCheck]) -> str:
    """A Markdown paragraph: the implied ranking, then per ablation whether the study found it."""
    if not checks:
        return ""
    lines = []
    for (dataset, model), group in _by_group(checks).items():
        worse = ", ".join(f"`{c.ablation}`" for c in group)
        lines.append(
            f"**Planted teacher ({dataset}, {model}).** The teacher implies `none` above {worse} "
            "(see fefm_lab/report/expectations.py for why); it implies no order among the other "
            "ablations."
        )
        for check in group:
            found = "; ".join(
                f"{METRIC_NAMES[m]}: {v or 'not run'}" for m, v in check.observed.items()
            )
            status = "recovered" if check.recovered else "**not recovered**"
            lines.append(
                f"- `{check.ablation}`: expected {check.expected}; found {found}: {status}."
            )
        recovered = all(c.recovered for c in group)
        lines.append(
            "- The study "
            + (
                "recovers the ranking the teacher implies."
                if recovered
                else "does **not** recover the ranking the teacher implies."
            )
        )
    return "\n".join(lines)


def _by_group(checks: list[ExpectationCheck]) -> dict[tuple[str, str], list[ExpectationCheck]]:
    groups: dict[tuple[str, str], list[ExpectationCheck]] = {}
    for check in checks:
        groups.setdefault((check.dataset, check.model), []).append(check)
    return groups
