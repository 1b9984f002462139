"""Streaming readers: raw CSV/TSV (plain or gzip) and parquet, in chunks of whole lines.

Each chunk is parsed by pyarrow (C++, multithreaded) with typed columns. Only when a chunk holds a
bad row does the reader fall back to a slower path that finds the row: its line number (1-based, as
an editor shows it) and content go into one DataError, or, with `on_bad_rows=skip`, it is dropped
and counted. Rows keep their data-row index (0-based, counting bad rows too), so the split of a row
never depends on which other rows were skipped.
"""

from __future__ import annotations

import gzip
import queue
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from fefm_lab.data.layout import SourceLayout
from fefm_lab.data.split import GIVEN_FILE_SHIFT
from fefm_lab.errors import DataError

_INTEGER_PATTERN = r"^[+-]?[0-9]{1,18}$"
_FLOAT_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_SHOWN_CHARS = 120
_READ_PIECE = 1 << 20


@dataclass
class RawChunk:
    """Parsed rows of one chunk.

    rows: data-row index per row (int64). labels: 0/1 (int8). strings: categorical columns.
    numbers: numeric columns as (values, missing) with int64 (float64 for float numerics) values,
    hour-of-day columns already reduced to 0..23.
    """

    rows: np.ndarray
    labels: np.ndarray
    strings: dict[str, pa.Array]
    numbers: dict[str, tuple[np.ndarray, np.ndarray]]
    bad_rows: int


def newlines(block: bytes) -> int:
    """Number of newline bytes in `block` (a vectorised compare: about 6x bytes.count)."""
    return int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))


def _read_block(stream: BinaryIO, size: int, pieces: list[bytes]) -> bytes:
    """Up to `size` bytes, read in pieces of at most 1 MiB collected in `pieces`: when a gzip
    stream breaks, what was decompressed before the break is still there to count lines in."""
    got = 0
    while got < size:
        piece = stream.read1(min(size - got, _READ_PIECE))
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def _is_utf8(block: bytes) -> bool:
    """Arrow's UTF-8 validation of the whole block, without a copy (about 3x Python's decode)."""
    offsets = pa.py_buffer(np.array([0, len(block)], dtype=np.int64))
    array = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(block)])
    try:
        array.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def undecodable_lines(block: bytes) -> list[tuple[int, int]]:
    """(0-based line index, byte offset in that line) of each line of `block` that is not UTF-8."""
    if _is_utf8(block):
        return []
    found = []
    start = 0
    while True:
        try:
            block[start:].decode("utf-8")
            return found
        except UnicodeDecodeError as err:
            position = start + err.start
        line_start = block.rfind(b"\n", 0, position) + 1
        line_end = block.find(b"\n", position)
        found.append((block.count(b"\n", 0, position), position - line_start))
        if line_end < 0:
            return found
        start = line_end + 1


def shorten(text: str, limit: int = _SHOWN_CHARS) -> str:
    """A row's content for a message: at most `limit` characters, then an ellipsis."""
    return text if len(text) <= limit else text[:limit] + "..."


def _open_raw(path: Path) -> BinaryIO:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


class TextSource:
    """A raw delimited text file read in blocks of whole lines."""

    def __init__(self, path: Path, layout: SourceLayout, on_bad_rows: str, block_bytes: int):
        self.path = Path(path)
        self.layout = layout
        self.skip_bad = on_bad_rows == "skip"
        self.block_bytes = block_bytes
        self.column_names: tuple[str, ...] = layout.column_names or ()
        # Bytes of the file (compressed, for .gz) read so far: the progress of a pass over it.
        self.bytes_read = 0

    def _blocks(self) -> Iterator[tuple[bytes, int, int]]:
        """(block of whole lines, 1-based line number of its first line, its newline count)."""
        line = 1
        carry = b""
        with _open_raw(self.path) as stream:
            while True:
                # The carried partial line leads the pieces: one join makes the block.
                pieces: list[bytes] = [carry] if carry else []
                try:
                    data = _read_block(stream, self.block_bytes, pieces)
                    self.bytes_read = getattr(stream, "fileobj", stream).tell()
                except (EOFError, OSError, zlib.error) as err:
                    # The line the readable data ends in: complete lines before it were fine.
                    last_line = line + sum(newlines(p) for p in pieces)
                    raise DataError(
                        f"{self.path}, line {last_line}: the gzip stream is truncated or corrupt "
                        f"in this line ({err}); expected a complete gzip file"
                    ) from None
                if len(data) == len(carry):
                    break
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                block, carry = data[: cut + 1], data[cut + 1 :]
                count = newlines(block)
                yield block, line, count
                line += count
        if carry:
            yield carry, line, 0

    def header_and_blocks(self) -> Iterator[tuple[bytes, int, int]]:
        """(block of data lines, its first line's number, its newline count); checks the header
        first when the layout has one."""
        header_seen = data_seen = False
        for block, line, count in self._blocks():
            if not header_seen and self.layout.has_header:
                if len(block) < 4096 and not block.strip():
                    continue
                header_seen = True
                end = block.find(b"\n")
                header_bytes = block if end < 0 else block[:end]
                try:
                    header = header_bytes.decode("utf-8").rstrip("\r")
                except UnicodeDecodeError as err:
                    raise self._not_text(line, err.start, header_bytes) from None
                self._check_header(header)
                block = b"" if end < 0 else block[end + 1 :]
                line += 1
                count = max(count - 1, 0)
            if not block:
                continue
            data_seen = True
            yield block, line, count
        if not data_seen:
            if header_seen:
                raise DataError(
                    f"{self.path}: the file has a header but no data rows; expected "
                    f"{self._expected()}"
                )
            raise DataError(f"{self.path}: the file is empty; expected {self._expected()}")

    def _expected(self) -> str:
        names = self.layout.expected_header or self.layout.column_names
        kind = "a header line and data rows" if self.layout.has_header else "data rows"
        if names:
            return f"{kind} of {len(names)} columns ({', '.join(names[:4])}, ...)"
        return kind

    def _check_header(self, header: str) -> None:
        names = tuple(header.split(self.layout.separator))
        expected = self.layout.expected_header
        if expected is not None and names != expected:
            raise DataError(
                f"{self.path}, line 1: the header does not match the declared format; expected "
                f"{shorten(self.layout.separator.join(expected))!r}, found {shorten(header)!r}"
            )
        missing = [c for c in self.layout.used_columns if c not in names]
        if missing:
            raise DataError(
                f"{self.path}, line 1: the header lacks the declared column(s) {missing!r}; "
                f"found {shorten(header)!r}"
            )
        if len(set(names)) != len(names):
            raise DataError(
                f"{self.path}, line 1: the header repeats a column: {shorten(header)!r}"
            )
        self.column_names = names

    def chunks(self) -> Iterator[RawChunk]:
        """Parsed chunks in file order. The blocks are read (and decompressed) one ahead in a
        thread of their own, so parsing never waits on the disk: at full Criteo size the file
        does not stay in the page cache, and reading in the parsing thread took about a sixth of
        the wall time."""
        first_data_line: int | None = None
        for block, line, count in prefetched(self.header_and_blocks()):
            if first_data_line is None:
                first_data_line = line
            yield self._parse(block, line, line - first_data_line, count)

    # parsing -------------------------------------------------------------------------------

    def _options(self, typed: bool, threads: bool, invalid: list) -> tuple:
        layout = self.layout

        def on_invalid(row) -> str:
            invalid.append((row.number, row.text, row.expected_columns, row.actual_columns))
            return "skip"

        types: dict[str, pa.DataType] = {c: pa.string() for c in layout.used_columns}
        if typed:
            numeric = pa.float64() if layout.numeric_floats else pa.int64()
            types.update({c: numeric for c in layout.integer})
            types.update({c: pa.int64() for c in (layout.label, *layout.hour_of_day)})
        return (
            pacsv.ReadOptions(
                column_names=list(self.column_names), use_threads=threads, block_size=4 << 20
            ),
            pacsv.ParseOptions(
                delimiter=layout.separator,
                quote_char=False,
                escape_char=False,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(layout.used_columns),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                # `_parse` checked the whole block first (one pass, rows that are not UTF-8
                # reported or dropped): checking each string column again cost ~8% of parsing.
                check_utf8=False,
            ),
        )

    def _read(self, block: bytes, typed: bool) -> tuple[pa.Table, list]:
        invalid: list = []
        table = pacsv.read_csv(pa.py_buffer(block), *self._options(typed, True, invalid))
        if invalid and any(number is None or number < 0 for number, *_ in invalid):
            invalid = []
            table = pacsv.read_csv(pa.py_buffer(block), *self._options(typed, False, invalid))
        return table, invalid

    def _line_text(self, block: bytes, index: int) -> str:
        """Text of the index-th (0-based) line of a block."""
        ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
        start = 0 if index == 0 else int(ends[index - 1]) + 1
        end = int(ends[index]) if index < len(ends) else len(block)
        return block[start:end].decode("utf-8", "replace").rstrip("\r")

    def _fail(self, line: int, problem: str, text: str) -> DataError:
        return DataError(f"{self.path}, line {line}: {problem}: {shorten(text)!r}")

    def _not_text(self, line: int, offset: int, raw: bytes) -> DataError:
        shown = shorten(repr(raw.rstrip(b"\r")))  # bytes as \xNN escapes, never raw
        return DataError(
            f"{self.path}, line {line}: byte {offset + 1} of the line is not UTF-8 text "
            f"(a binary or differently encoded file?); expected {self._expected()}; "
            f"the line's bytes: {shown}"
        )

    def _without_undecodable(self, block: bytes, first_line: int) -> bytes:
        """The block with rows that are not UTF-8 emptied (skip) or a DataError naming the first.

        pyarrow reports such a row only for the whole block, and its invalid-row callback cannot
        even decode it (it prints "Exception ignored" tracebacks): rows are checked here first.
        """
        bad = undecodable_lines(block)
        if not bad:
            return block
        lines = block.split(b"\n")
        if not self.skip_bad:
            index, offset = bad[0]
            raise self._not_text(first_line + index, offset, lines[index])
        for index, _ in bad:
            lines[index] = b""
        return b"\n".join(lines)

    def _parse(self, block: bytes, first_line: int, first_row: int, newline_count: int) -> RawChunk:
        n_lines = newline_count + (0 if block.endswith(b"\n") else 1)
        block = self._without_undecodable(block, first_line)
        try:
            table, invalid = self._read(block, typed=True)
            typed = True
        except pa.ArrowInvalid:
            try:
                table, invalid = self._read(block, typed=False)
            except pa.ArrowInvalid as err:
                raise DataError(
                    f"{self.path}, lines {first_line}-{first_line + n_lines - 1}: "
                    f"cannot parse: {err}"
                ) from None
            typed = False
        if invalid:
            number, text, expected, actual = invalid[0]
            if not self.skip_bad:
                raise self._fail(
                    first_line + number - 1,
                    f"expected {expected} columns, found {actual}",
                    text,
                )
        skipped_lines = np.array([number - 1 for number, *_ in invalid], dtype=np.int64)
        kept_lines = np.delete(np.arange(n_lines, dtype=np.int64), skipped_lines)
        if len(kept_lines) != table.num_rows:
            raise DataError(
                f"{self.path}, lines {first_line}-{first_line + n_lines - 1}: the parser found "
                f"{table.num_rows} rows in {n_lines} lines; is a value quoted across lines?"
            )
        bad = np.zeros(table.num_rows, dtype=bool)
        problems: list[tuple[np.ndarray, str]] = []
        if not typed:
            table = self._convert_strings(table, problems)
        labels = table.column(self.layout.label).to_numpy(zero_copy_only=False)
        label_bad = ~np.isin(labels, (0, 1)) | np.isnan(labels.astype(np.float64))
        problems.append((label_bad, f"the label ({self.layout.label}) must be 0 or 1"))
        numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in self.layout.integer:
            numbers[name] = _numeric(table.column(name), self.layout.numeric_floats)
        for name in self.layout.hour_of_day:
            values, missing = _numeric(table.column(name), False)
            hour = values % 100
            hour_bad = missing | (values < 0) | (values > 99_999_999) | (hour > 23)
            problems.append((hour_bad, f"{name} must be YYMMDDHH with HH in 00..23"))
            numbers[name] = (hour, missing)
        for mask, problem in problems:
            if mask.any():
                if not self.skip_bad:
                    index = int(np.argmax(mask))
                    line_index = int(kept_lines[index])
                    raise self._fail(
                        first_line + line_index, problem, self._line_text(block, line_index)
                    )
                bad |= mask
        keep = ~bad
        strings = {name: table.column(name) for name in self.layout.categorical}
        if bad.any():
            keep_arrow = pa.array(keep)
            strings = {name: pc.filter(array, keep_arrow) for name, array in strings.items()}
            numbers = {name: (v[keep], m[keep]) for name, (v, m) in numbers.items()}
        return RawChunk(
            rows=first_row + kept_lines[keep],
            labels=labels[keep].astype(np.int8),
            strings=strings,
            numbers=numbers,
            bad_rows=len(invalid) + int(bad.sum()),
        )

    def _convert_strings(self, table: pa.Table, problems: list) -> pa.Table:
        """Type the string-read columns, recording rows whose values do not parse."""
        layout = self.layout
        columns = {name: table.column(name) for name in table.column_names}
        targets = [(c, _INTEGER_PATTERN, pa.int64(), "an integer") for c in (layout.label,)]
        numeric_pattern = _FLOAT_PATTERN if layout.numeric_floats else _INTEGER_PATTERN
        numeric_type = pa.float64() if layout.numeric_floats else pa.int64()
        numeric_word = "a number" if layout.numeric_floats else "an integer"
        targets += [(c, numeric_pattern, numeric_type, numeric_word) for c in layout.integer]
        targets += [(c, _INTEGER_PATTERN, pa.int64(), "an integer") for c in layout.hour_of_day]
        for name, pattern, arrow_type, word in targets:
            column = columns[name]
            ok = pc.match_substring_regex(column, pattern)
            bad = (
                pc.and_(pc.is_valid(column), pc.invert(ok))
                .to_numpy(zero_copy_only=False)
                .astype(bool)
            )
            problems.append((bad, f"column {name} must hold {word}"))
            cleaned = pc.if_else(pc.fill_null(ok, False), column, pa.scalar(None, pa.string()))
            columns[name] = pc.cast(cleaned, arrow_type)
        return pa.table(columns)


def _numeric(column: pa.ChunkedArray, floats: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) of a numeric column; missing values hold 0."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    missing = (
        array.is_null().to_numpy(zero_copy_only=False)
        if array.null_count
        else np.zeros(len(array), dtype=bool)
    )
    dtype = np.float64 if floats else np.int64
    values = pc.fill_null(array, 0).to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return values, missing


class ParquetSource:
    """A parquet file read by row groups; problems are reported by 1-based row number."""

    def __init__(self, path: Path, layout: SourceLayout, on_bad_rows: str, block_rows: int):
        self.path = Path(path)
        self.layout = layout
        self.skip_bad = on_bad_rows == "skip"
        self.block_rows = block_rows

    def chunks(self) -> Iterator[RawChunk]:
        import pyarrow.parquet as pq

        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file")
        try:
            reader = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(f"{self.path}: not a readable parquet file ({err})") from None
        names = reader.schema_arrow.names
        missing = [c for c in self.layout.used_columns if c not in names]
        if missing:
            raise DataError(
                f"{self.path}: the parquet schema lacks the declared column(s) {missing!r}; "
                f"found {names!r}"
            )
        if reader.metadata.num_rows == 0:
            raise DataError(f"{self.path}: the file is empty; expected data rows")
        first_row = 0
        for batch in reader.iter_batches(
            batch_size=self.block_rows, columns=list(self.layout.used_columns)
        ):
            yield self._convert(batch, first_row)
            first_row += batch.num_rows

    def _convert(self, batch: pa.RecordBatch, first_row: int) -> RawChunk:
        layout = self.layout
        n = batch.num_rows
        bad = np.zeros(n, dtype=bool)
        problems: list[tuple[np.ndarray, str]] = []
        label = batch.column(layout.label)
        labels = pc.fill_null(pc.cast(label, pa.float64(), safe=False), -1).to_numpy()
        label_bad = ~np.isin(labels, (0.0, 1.0))
        problems.append((label_bad, f"the label ({layout.label}) must be 0 or 1"))
        numbers = {}
        for name in layout.integer:
            column = batch.column(name)
            if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
                raise DataError(
                    f"{self.path}: column {name} has type {column.type}; expected numbers"
                )
            values, missing = _numeric(pc.cast(column, pa.float64()), True)
            if not layout.numeric_floats:
                fractional = values != np.floor(values)
                problems.append((fractional & ~missing, f"column {name} must hold integers"))
                values = values.astype(np.int64)
            numbers[name] = (values, missing)
        for mask, problem in problems:
            if mask.any():
                if not self.skip_bad:
                    index = int(np.argmax(mask))
                    content = {c: batch.column(c)[index].as_py() for c in layout.used_columns}
                    raise DataError(
                        f"{self.path}, row {first_row + index + 1}: {problem}: "
                        f"{shorten(repr(content))}"
                    )
                bad |= mask
        keep = ~bad
        strings = {name: pc.cast(batch.column(name), pa.string()) for name in layout.categorical}
        if bad.any():
            keep_arrow = pa.array(keep)
            strings = {name: pc.filter(a, keep_arrow) for name, a in strings.items()}
            numbers = {name: (v[keep], m[keep]) for name, (v, m) in numbers.items()}
        return RawChunk(
            rows=first_row + np.flatnonzero(keep).astype(np.int64),
            labels=labels[keep].astype(np.int8),
            strings=strings,
            numbers=numbers,
            bad_rows=int(bad.sum()),
        )


T = TypeVar("T")
_END = object()


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """`items` in order, the next `depth` produced by a background thread while the caller works
    on the current one: pyarrow's parser and most numpy work release the GIL, so on two cores
    reading and parsing a chunk overlaps encoding the previous one. An exception in the producer
    is raised here, at the position it happened; closing this iterator stops the producer."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            put((_END, err))
            return
        put((_END, None))

    producer = threading.Thread(target=produce, name="fefm-lab-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item, error = handoff.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        producer.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


class SplitFilesSource:
    """A published split's files ([train, validation, test]) read one after another as one source.

    Each file is a TextSource of the same layout (its own header check, its own line numbers in
    messages); a row's index is (file index << GIVEN_FILE_SHIFT) + its data-row index in its file,
    which `assign_splits(rows, "given", ...)` reads the split from.
    """

    def __init__(self, paths: list[Path], layout: SourceLayout, on_bad_rows: str, block_bytes: int):
        self.sources = [TextSource(p, layout, on_bad_rows, block_bytes) for p in paths]

    @property
    def column_names(self) -> tuple[str, ...]:
        return self.sources[0].column_names

    def chunks(self) -> Iterator[RawChunk]:
        for index, source in enumerate(self.sources):
            for chunk in source.chunks():
                chunk.rows = chunk.rows + (index << GIVEN_FILE_SHIFT)
                yield chunk


def open_source(path: Path, layout: SourceLayout, on_bad_rows: str, block_bytes: int):
    """The reader for `layout`: chunks() yields RawChunk."""
    if layout.file_type == "parquet":
        return ParquetSource(path, layout, on_bad_rows, block_rows=max(1, block_bytes // 256))
    return TextSource(path, layout, on_bad_rows, block_bytes)


def count_data_rows(source) -> int:
    """Data rows (lines after any header, or parquet rows): sequential splits need the total."""
    if isinstance(source, ParquetSource):
        import pyarrow.parquet as pq

        return pq.ParquetFile(source.path).metadata.num_rows
    total = 0
    for block, _, count in source.header_and_blocks():
        total += count + (0 if block.endswith(b"\n") else 1)
    return total
