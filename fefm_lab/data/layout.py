"""Column layouts of the raw sources: which column is the label, which are fields of which kind."""

from __future__ import annotations

from dataclasses import dataclass

from fefm_lab.config.dataset import DatasetConfig

CRITEO_INTEGER = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))
CRITEO_COLUMNS = ("label", *CRITEO_INTEGER, *CRITEO_CATEGORICAL)

AVAZU_COLUMNS = (
    "id",
    "click",
    "hour",
    "C1",
    "banner_pos",
    "site_id",
    "site_domain",
    "site_category",
    "app_id",
    "app_domain",
    "app_category",
    "device_id",
    "device_ip",
    "device_model",
    "device_type",
    "device_conn_type",
    *(f"C{i}" for i in range(14, 22)),
)
AVAZU_CATEGORICAL = tuple(c for c in AVAZU_COLUMNS if c not in ("id", "click", "hour"))


@dataclass(frozen=True)
class SourceLayout:
    """How to read one raw file.

    `categorical` columns are read as strings; `integer` columns as int64 (or float64 when
    `numeric_floats`), encoded per `integer_encoding`; `hour_of_day` columns hold YYMMDDHH and
    become 0..23. Field order in the prepared data is the column order of the file.
    """

    file_type: str
    separator: str
    has_header: bool
    expected_header: tuple[str, ...] | None  # exact header required (Avazu); None: any superset
    column_names: tuple[str, ...] | None  # None: taken from the header
    label: str
    categorical: tuple[str, ...]
    integer: tuple[str, ...]
    hour_of_day: tuple[str, ...] = ()
    numeric_floats: bool = False

    @property
    def used_columns(self) -> tuple[str, ...]:
        return (self.label, *self.categorical, *self.integer, *self.hour_of_day)

    def field_order(self, column_names: tuple[str, ...]) -> tuple[str, ...]:
        """Feature fields in file order."""
        wanted = {*self.categorical, *self.integer, *self.hour_of_day}
        return tuple(c for c in column_names if c in wanted)


def layout_for(config: DatasetConfig, raw_format: str | None = None) -> SourceLayout:
    """The layout of `config`'s source (`raw_format` overrides, for generated synthetic files)."""
    fmt = raw_format or config.format
    if fmt == "criteo":
        return SourceLayout(
            file_type="csv",
            separator="\t",
            has_header=False,
            expected_header=None,
            column_names=CRITEO_COLUMNS,
            label="label",
            categorical=CRITEO_CATEGORICAL,
            integer=CRITEO_INTEGER,
            numeric_floats=False,
        )
    if fmt == "avazu":
        return SourceLayout(
            file_type="csv",
            separator=",",
            has_header=True,
            expected_header=AVAZU_COLUMNS,
            column_names=AVAZU_COLUMNS,
            label="click",
            categorical=AVAZU_CATEGORICAL,
            integer=(),
            hour_of_day=("hour",),
        )
    if fmt == "generic":
        return SourceLayout(
            file_type=config.file_type,
            separator=config.separator,
            has_header=config.header,
            expected_header=tuple(config.column_names)
            if config.header and config.column_names
            else None,
            column_names=tuple(config.column_names) if config.column_names else None,
            label=config.label or "",
            categorical=config.categorical,
            integer=config.numeric,
            numeric_floats=config.integer_encoding == "dense_minmax",
        )
    raise ValueError(f"no raw layout for format {fmt!r}")
