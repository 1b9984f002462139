"""The open benchmark's published splits (dataset presets criteo_x1, avazu_x1, frappe_x1): files
read as given, never re-split, each file's MD5 checked before anything is prepared.

The files here are tiny, hand-built in each preset's published layout (header, columns, value
kinds); the real-data test converts rows of the shared Criteo sample at test time.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.ipc as ipc
import pytest

from fefm_lab.config.compose import resolved_config
from fefm_lab.data import prepare
from fefm_lab.data.checksums import file_md5
from fefm_lab.data.prepared import LABEL_COLUMN, MANIFEST
from fefm_lab.errors import ConfigError, DataError

CRITEO_X1_HEADER = ["label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]
AVAZU_X1_HEADER = ["label", *(f"feat_{i}" for i in range(1, 23))]
FRAPPE_X1_HEADER = "label,user,item,daytime,weekday,isweekend,homework,cost,weather,country,city"
FRAPPE_X1_HEADER = FRAPPE_X1_HEADER.split(",")


def _criteo_x1_row(index: int) -> str:
    """A row in Criteo_x1's layout: 0/1 label, 13 floats, 26 integer feature ids."""
    label = index % 3 == 0
    floats = [f"{(index * (i + 1)) % 7 / 10:.1f}" for i in range(13)]
    ids = [str(1000 * (c + 1) + index % 4) for c in range(26)]
    return ",".join([str(int(label)), *floats, *ids])


def write_split_folder(folder: Path, header: list[str], rows: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in rows.items():
        (folder / name).write_text(",".join(header) + "\n" + "".join(f"{r}\n" for r in lines))
    return folder


def criteo_x1_folder(folder: Path, counts=(12, 4, 3)) -> Path:
    """train/valid/test.csv of 12, 4 and 3 rows; valid's and test's rows start where train's end,
    so their feature ids are partly unseen in train."""
    starts = np.cumsum((0, *counts))
    names = ("train.csv", "valid.csv", "test.csv")
    rows = {
        name: [_criteo_x1_row(i) for i in range(starts[k], starts[k + 1])]
        for k, name in enumerate(names)
    }
    return write_split_folder(folder, CRITEO_X1_HEADER, rows)


def preset(name: str, folder: Path, *extra: str) -> dict:
    """The composed `dataset` section of preset `name`, pointing at `folder`."""
    return resolved_config([f"dataset={name}", f"dataset.path={folder}", *extra])["dataset"]


def md5_override(folder: Path) -> str:
    digests = ",".join(file_md5(folder / n) for n in ("train.csv", "valid.csv", "test.csv"))
    return f"dataset.md5=[{digests}]"


def read_split(directory: Path, split: str) -> dict[str, np.ndarray]:
    manifest = json.loads((directory / MANIFEST).read_text())
    tables = [
        ipc.open_file(directory / shard).read_all() for shard in manifest["splits"][split]["shards"]
    ]
    return {
        name: np.concatenate([t.column(name).to_numpy() for t in tables])
        for name in tables[0].column_names
    }


def test_criteo_x1_splits_kept_as_given(tmp_path, data_root):
    folder = criteo_x1_folder(tmp_path / "Criteo_x1")
    config = preset("criteo_x1", folder, md5_override(folder))
    prepared = prepare(config, seed=1, data_root=data_root, progress=False)
    manifest = json.loads((prepared.directory / MANIFEST).read_text())
    # one split per file, row for row, and the clicks each file holds (every third row)
    assert {s: manifest["splits"][s]["rows"] for s in ("train", "validation", "test")} == {
        "train": 12,
        "validation": 4,
        "test": 3,
    }
    assert [manifest["splits"][s]["positives"] for s in ("train", "validation", "test")] == [
        4,
        2,
        1,
    ]
    assert manifest["md5_checked"] == [file_md5(folder / n) for n in config["split_files"]]
    assert "split_seed" not in manifest["settings"]
    # file order kept: the test split's labels are rows 16, 17, 18's
    test = read_split(prepared.directory, "test")
    assert test[LABEL_COLUMN].tolist() == [0.0, 0.0, 1.0]
    # the vocabulary is the train file's: ids 1000c + (i % 4) all appear in train (i = 0..11)
    # with min_count 1, so no valid/test value is OOV; the I columns are train min/max scaled
    fields = {f.name: f for f in prepared.feature_map.fields}
    assert fields["C1"].vocabulary_size == 2 + 4
    assert fields["I1"].kind == "dense"
    assert (fields["I1"].scale_min, fields["I1"].scale_max) == (0.0, 0.6)
    assert test["C1"].min() >= 2
    # another seed reuses the same prepared data: no seed decides a given split
    again = prepare(config, seed=2, data_root=data_root, progress=False)
    assert again.directory == prepared.directory


def test_values_only_in_valid_or_test_are_oov(tmp_path, data_root):
    folder = tmp_path / "Frappe_x1"
    row = "{label},{user},7,morning,sunday,weekend,unknown,free,sunny,spain,0"
    rows = {
        "train.csv": [row.format(label=i % 2, user=f"u{i % 3}") for i in range(6)],
        "valid.csv": [row.format(label=1, user="u9"), row.format(label=0, user="u0")],
        "test.csv": [row.format(label=0, user="u8")],
    }
    write_split_folder(folder, FRAPPE_X1_HEADER, rows)
    prepared = prepare(
        preset("frappe_x1", folder, md5_override(folder)),
        seed=1,
        data_root=data_root,
        progress=False,
    )
    user = prepared.feature_map.field("user")
    assert user.vocabulary_size == 2 + 3
    valid = read_split(prepared.directory, "validation")
    assert valid["user"][0] == user.oov_id
    assert valid["user"][1] != user.oov_id
    assert read_split(prepared.directory, "test")["user"].tolist() == [user.oov_id]
    assert prepared.feature_map.field("city").vocabulary_size == 3


def test_avazu_x1_reader(tmp_path, data_root):
    folder = tmp_path / "Avazu_x1"
    rows = {
        name: [
            ",".join([str(i % 2), *(str(100 * f + i % 5) for f in range(22))]) for i in range(count)
        ]
        for name, count in (("train.csv", 10), ("valid.csv", 2), ("test.csv", 4))
    }
    write_split_folder(folder, AVAZU_X1_HEADER, rows)
    prepared = prepare(
        preset("avazu_x1", folder, md5_override(folder)),
        seed=3,
        data_root=data_root,
        progress=False,
    )
    assert [f.name for f in prepared.feature_map.fields] == AVAZU_X1_HEADER[1:]
    assert prepared.feature_map.field("feat_22").vocabulary_size == 2 + 5
    manifest = json.loads((prepared.directory / MANIFEST).read_text())
    assert [manifest["splits"][s]["rows"] for s in ("train", "validation", "test")] == [10, 2, 4]
    assert [manifest["splits"][s]["positives"] for s in ("train", "validation", "test")] == [
        5,
        1,
        2,
    ]


def test_criteo_x4_reader_buckets_integers_and_drops_rare_values(tmp_path, data_root):
    """Criteo_x4's raw columns: integers (blank = missing) become floor(ln(x)^2) buckets for x > 2,
    and values seen fewer than 10 times in train share the OOV id (the _001 protocol)."""
    header = ["Label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]

    def row(label: int, i1: str, c1: str) -> str:
        return ",".join([str(label), i1, *["1"] * 12, c1, *["ab12"] * 25])

    # I1: 10 x "3" (ln(3)^2 = 1.2 -> bucket 1) and 10 x "20" (ln(20)^2 = 8.97 -> 8); C1: "aa" 12
    # times, "bb" 8 times (rare), so C1 keeps one value besides OOV and missing
    train = [row(i % 2, "3" if i < 10 else "20", "aa" if i < 12 else "bb") for i in range(20)]
    folder = write_split_folder(
        tmp_path / "Criteo_x4",
        header,
        {
            "train.csv": train,
            "valid.csv": [row(1, "2", "bb"), row(0, "", "")],
            "test.csv": [row(0, "7", "aa")],  # ln(7)^2 = 3.79 -> 3: unseen in train
        },
    )
    prepared = prepare(
        preset("criteo_x4", folder, md5_override(folder)),
        seed=1,
        data_root=data_root,
        progress=False,
    )
    i1, c1 = prepared.feature_map.field("I1"), prepared.feature_map.field("C1")
    assert i1.encoding == "log_bucket" and i1.vocabulary_size == 2 + 2
    assert c1.vocabulary_size == 2 + 1
    valid = read_split(prepared.directory, "validation")
    assert valid["I1"].tolist() == [i1.oov_id, i1.missing_id]
    assert valid["C1"].tolist() == [c1.oov_id, c1.missing_id]
    test = read_split(prepared.directory, "test")
    assert test["I1"].tolist() == [i1.oov_id] and test["C1"][0] not in (c1.oov_id, c1.missing_id)
    manifest = json.loads((prepared.directory / MANIFEST).read_text())
    assert [manifest["splits"][s]["rows"] for s in ("train", "validation", "test")] == [20, 2, 1]


def test_published_md5_mismatch_refused_before_anything_is_written(tmp_path, data_root):
    folder = criteo_x1_folder(tmp_path / "Criteo_x1")
    with pytest.raises(DataError) as caught:
        prepare(preset("criteo_x1", folder), seed=1, data_root=data_root, progress=False)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'train.csv'}: MD5 {file_md5(folder / 'train.csv')}")
    assert "is not the published 30b89c1c7213013b92df52ec44f52dc5" in message
    prepared_root = data_root / "prepared"
    assert not prepared_root.exists() or [p.name for p in prepared_root.iterdir()] == []


def test_md5_names_the_file_that_differs(tmp_path, data_root):
    folder = criteo_x1_folder(tmp_path / "Criteo_x1")
    good = [file_md5(folder / n) for n in ("train.csv", "valid.csv", "test.csv")]
    wrong = [good[0], good[1], hashlib.md5(b"another test.csv").hexdigest()]
    config = preset("criteo_x1", folder, f"dataset.md5=[{','.join(wrong)}]")
    with pytest.raises(DataError, match=r"test\.csv: MD5 .* is not the published"):
        prepare(config, seed=1, data_root=data_root, progress=False)


def test_cli_refuses_a_mismatch_with_exit_2(tmp_path):
    folder = criteo_x1_folder(tmp_path / "Criteo_x1")
    root = tmp_path / "root"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fefm_lab.cli",
            "prepare",
            "dataset=criteo_x1",
            f"dataset.path={folder}",
            f"paths.root_dir={root}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2, result.stderr
    assert f"{folder / 'train.csv'}: MD5" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((root / "data" / "prepared").glob("criteo_x1-*"))


def test_missing_split_file_named(tmp_path, data_root):
    folder = criteo_x1_folder(tmp_path / "Criteo_x1")
    (folder / "valid.csv").unlink()
    with pytest.raises(DataError, match=r"valid\.csv: no such file; dataset.split_files"):
        prepare(preset("criteo_x1", folder), seed=1, data_root=data_root, progress=False)


def test_each_file_header_checked(tmp_path, data_root):
    folder = criteo_x1_folder(tmp_path / "Criteo_x1")
    text = (folder / "test.csv").read_text().replace("C26", "C27", 1)
    (folder / "test.csv").write_text(text)
    config = preset("criteo_x1", folder, "dataset.md5=null")
    with pytest.raises(DataError, match=r"test\.csv, line 1: the header does not match"):
        prepare(config, seed=1, data_root=data_root, progress=False)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "dataset.md5=[abc,def,0]",
            "dataset.md5: expected null or three lowercase hex MD5 digests (32 characters) of "
            "[train, validation, test], got ['abc', 'def', '0']",
        ),
        (
            "dataset.split_files=[a.csv,a.csv,b.csv]",
            "dataset.split_files: expected three distinct file names [train, validation, test] "
            "inside dataset.path, got ['a.csv', 'a.csv', 'b.csv']",
        ),
        (
            "dataset.file_type=parquet",
            "dataset.split: expected 'given' only with dataset.format=generic and "
            "dataset.file_type=csv (three csv files as published: the bars_* presets); format is "
            "'generic', file_type 'parquet', got 'given'",
        ),
    ],
)
def test_bad_given_split_settings_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError) as caught:
        resolved_config(["dataset=criteo_x1", f"dataset.path={tmp_path}", override])
    assert str(caught.value) == message


def test_real_criteo_rows_in_the_x1_layout(tmp_path, data_root, real_data_dir):
    """Rows of the shared Criteo sample rewritten as Criteo_x1 rows (floats ln(1 + max(x, 0)),
    ids per value), cut at test time into 700 / 200 / 100 rows."""
    lines = (real_data_dir / "criteo" / "train_10k.txt").read_text().splitlines()[:1000]
    ids: dict[str, int] = {}
    rows = []
    for line in lines:
        parts = line.split("\t")
        floats = [f"{np.log1p(max(int(v), 0)) if v else 0.0:.6f}" for v in parts[1:14]]
        cats = [str(ids.setdefault(f"{c}:{v}", len(ids))) for c, v in enumerate(parts[14:])]
        rows.append(",".join([parts[0], *floats, *cats]))
    folder = write_split_folder(
        tmp_path / "Criteo_x1",
        CRITEO_X1_HEADER,
        {"train.csv": rows[:700], "valid.csv": rows[700:900], "test.csv": rows[900:]},
    )
    prepared = prepare(
        preset("criteo_x1", folder, md5_override(folder)),
        seed=1,
        data_root=data_root,
        progress=False,
    )
    manifest = json.loads((prepared.directory / MANIFEST).read_text())
    clicks = [sum(r.startswith("1,") for r in part) for part in (rows[:700], rows[700:900])]
    assert [manifest["splits"][s]["rows"] for s in ("train", "validation", "test")] == [
        700,
        200,
        100,
    ]
    assert [manifest["splits"][s]["positives"] for s in ("train", "validation")] == clicks
