"""The Table 5-style ablation report: mean +- std over seeds, paired comparisons, paper numbers;
the MLflow UI links that compare a sweep's runs."""

from fefm_lab.report.ablation_table import ablation_table, load_runs
from fefm_lab.report.write import ReportFiles, write_report

__all__ = ["ReportFiles", "ablation_table", "load_runs", "write_report"]
