"""The Table 5-style ablation report: mean +- std over seeds, paired comparisons, paper numbers."""

from fefm_lab.report.ablation import ablation_table, load_runs
from fefm_lab.report.write import ReportFiles, write_report

__all__ = ["ReportFiles", "ablation_table", "load_runs", "write_report"]
