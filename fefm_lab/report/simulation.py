"""Simulated studies: how often the verdicts are wrong, and how often they settle.

A simulated study has `tests` comparisons, each with paired differences drawn from N(δ, σ²)
(δ the true difference, in the metric's "higher is better" direction). It looks at them after
each count of seeds in `looks` (an adaptive sweep: seeds are added only to the comparisons still
not resolved; a settled one keeps its verdict, since later looks see the same seeds at the same
level) with the interval of `fefm_lab.report.verdicts` at α' = α / (tests · looks). Vectorised
over studies, so thousands of studies take well under a second.

A verdict is false when what it states about δ is untrue: `better` when δ <= 0, `worse` when
δ >= 0, `equivalent` when |δ| >= margin. `python -m fefm_lab.report.simulation` prints the
table the README cites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fefm_lab.report.statistics import ALPHA, BETTER, NOT_RESOLVED, WORSE
from fefm_lab.report.verdicts import (
    EQUIVALENT,
    VERDICTS,
    difference_intervals,
    interval_codes,
)

CODE = {name: VERDICTS.index(name) for name in VERDICTS}


@dataclass(frozen=True)
class SimulationResult:
    """Verdict codes (studies, tests) and the seeds each comparison used."""

    delta: float
    margin: float
    codes: np.ndarray
    seeds: np.ndarray

    def false(self) -> np.ndarray:
        """Per study and test: is the verdict false for this δ?"""
        wrong = np.zeros(self.codes.shape, dtype=bool)
        if self.delta <= 0:
            wrong |= self.codes == CODE[BETTER]
        if self.delta >= 0:
            wrong |= self.codes == CODE[WORSE]
        if abs(self.delta) >= self.margin:
            wrong |= self.codes == CODE[EQUIVALENT]
        return wrong

    @property
    def family_error_rate(self) -> float:
        """Share of studies with at least one false verdict."""
        return float(self.false().any(axis=1).mean())

    @property
    def settled_rate(self) -> float:
        """Share of comparisons that end with a correct verdict (the power)."""
        return float(((self.codes != CODE[NOT_RESOLVED]) & ~self.false()).mean())

    def share(self, verdict: str) -> float:
        return float((self.codes == CODE[verdict]).mean())


def simulate_studies(
    delta: float,
    sigma: float,
    margin: float,
    *,
    looks: Sequence[int],
    tests: int,
    studies: int,
    rng: np.random.Generator,
    alpha: float = ALPHA,
) -> SimulationResult:
    """`studies` simulated studies, each stopping a comparison at the first look it settles."""
    level = alpha / (tests * len(looks))
    differences = rng.normal(delta, sigma, size=(studies, tests, max(looks)))
    codes = np.full((studies, tests), CODE[NOT_RESOLVED])
    seeds = np.zeros((studies, tests), dtype=int)
    open_ = np.ones((studies, tests), dtype=bool)
    for n in looks:
        _, _, low, high = difference_intervals(differences[..., :n], level)
        now = interval_codes(low, high, margin, higher_better=True)
        seeds = np.where(open_, n, seeds)
        codes = np.where(open_, now, codes)
        open_ &= now == CODE[NOT_RESOLVED]
    return SimulationResult(delta, margin, codes, seeds)


def main() -> None:
    """Print the simulation table: false-verdict rates and power for three true differences."""
    looks, tests, studies = (3, 5, 10, 20), 4, 4000
    print(
        f"{studies} studies per row, {tests} comparisons each, looks after {looks} seeds, "
        f"alpha {ALPHA}, margin 1, paired std σ; power: correct verdicts\n"
    )
    print("| true Δ | σ | studies with a false verdict | power | better | worse | equivalent | "
          "not resolved | mean seeds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for sigma in (0.25, 0.5, 1.0):
        for delta in (0.0, 0.5, 2.0):
            result = simulate_studies(
                delta, sigma, 1.0, looks=looks, tests=tests, studies=studies,
                rng=np.random.default_rng(7),  # each row as tests/report/test_verdict_simulation
            )  # fmt: skip
            shares = " | ".join(f"{result.share(v):.3f}" for v in VERDICTS)
            print(
                f"| {delta} | {sigma} | {result.family_error_rate:.4f} | "
                f"{result.settled_rate:.4f} | {shares} | "
                f"{result.seeds.mean():.1f} |"
            )


if __name__ == "__main__":
    main()
