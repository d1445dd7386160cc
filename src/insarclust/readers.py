"""Streaming CSV readers for plain, gzip and zip exports (EGMS ships zips).

A site's input is one or more files; a zip may hold several CSV members.
Each CSV is read in blocks of whole lines, each parsed by pyarrow on all
cores, so memory is bounded by the block size, never by the file.
"""
from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import InputError
from .formats import ColumnPlan, Format, plan_columns


@dataclass(frozen=True)
class CsvInput:
    """One CSV stream: a plain/.gz file, or one member of a .zip."""

    path: str
    member: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def open_binary(self):
        if self.member is not None:
            return zipfile.ZipFile(self.path).open(self.member)
        if str(self.path).endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")


def expand_inputs(paths) -> list[CsvInput]:
    """Files -> CSV streams; zips expand to their ``.csv`` members (sorted)."""
    out = []
    for p in paths:
        p = str(p)
        if not Path(p).exists():
            raise InputError("file not found", file=p, fix="fix the source path/glob in config/sites.tsv")
        if Path(p).stat().st_size == 0:
            raise InputError("the file is empty (0 bytes)", file=p,
                             fix="re-download or re-export it, or remove it from the site's source")
        if p.endswith(".zip"):
            try:
                with zipfile.ZipFile(p) as zf:
                    bad = zf.testzip()
                    members = sorted(n for n in zf.namelist()
                                     if n.lower().endswith((".csv", ".csv.gz")) and not n.startswith("__MACOSX"))
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise InputError(f"cannot read the zip archive ({err})", file=p,
                                 fix="re-download the archive (it is truncated or not a zip)") from None
            if bad is not None:
                raise InputError(f"zip member '{bad}' is corrupt (CRC mismatch)", file=p,
                                 fix="re-download the archive")
            if not members:
                raise InputError("the zip archive holds no .csv file", file=p,
                                 fix="point the site's source at the CSV export")
            out += [CsvInput(p, m) for m in members]
        else:
            out.append(CsvInput(p))
    return out


def read_header(src: CsvInput, fmt: Format) -> list[str]:
    try:
        with src.open_binary() as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
            header = next(csv.reader(text, delimiter=fmt.delimiter), None)
    except (OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the file ({err})", file=src.label,
                         fix="check that it is a CSV (plain, .gz or .zip) and not truncated") from None
    if not header or all(not h.strip() for h in header):
        raise InputError("the file has no header line", file=src.label,
                         fix="the first line must name the columns")
    return header


@dataclass
class Block:
    """One parsed block of rows of one file (row numbers 1-based, header = row 0)."""

    first_row: int
    pid: np.ndarray        # (n,) object str
    lat: np.ndarray        # (n,) float64
    lon: np.ndarray        # (n,) float64
    static: np.ndarray     # (n, S) float32
    displacement: np.ndarray  # (n, T_file) float32 mm, NaN = missing
    blank_id: np.ndarray   # (n,) bool: the id is empty or whitespace only


def _column(batch: pa.RecordBatch, name: str, dtype) -> np.ndarray:
    # floating nulls become NaN in to_numpy
    return batch.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _byte_blocks(fh, block_bytes: int) -> Iterator[memoryview]:
    """Whole lines of a binary stream, about ``block_bytes`` at a time (header excluded).

    Each block is read straight into a fresh buffer (``readinto``) behind the
    partial line carried over from the previous one: slicing and concatenating
    ``bytes`` copied every block twice, which cost as much as a third of the parse.
    """
    fh.readline()  # the header (read_header parsed it)
    carry = b""
    while True:
        buf = np.empty(len(carry) + block_bytes, dtype=np.uint8)
        view = memoryview(buf)
        view[:len(carry)] = carry
        filled = len(carry)
        while filled < len(buf):
            got = fh.readinto(view[filled:])
            if not got:
                break
            filled += got
        if filled < len(buf):   # end of the stream: the rest, last line with or without its newline
            if not np.isin(buf[:filled], np.frombuffer(b" \t\r\n", np.uint8)).all():
                yield view[:filled]
            return
        cut = _last_newline(buf, filled)
        if cut < 0:   # no line end yet: carry everything on
            carry = view[:filled].tobytes()
            continue
        yield view[:cut + 1]
        carry = view[cut + 1:filled].tobytes()


def _last_newline(buf: np.ndarray, filled: int) -> int:
    """Index of the last ``\\n`` in ``buf[:filled]`` (-1: none); scans back 64 kB at a time."""
    end = filled
    while end > 0:
        start = max(0, end - (1 << 16))
        hits = np.flatnonzero(buf[start:end] == 10)
        if len(hits):
            return start + int(hits[-1])
        end = start
    return -1


def iter_blocks(src: CsvInput, plan: ColumnPlan, fmt: Format, block_bytes: int = 64 << 20) -> Iterator[Block]:
    """Parse the needed columns of ``src`` block by block.

    The stream (plain, gunzipped or unzipped) is cut into blocks of whole lines
    and each block is parsed by ``pyarrow.csv.read_csv`` on all cores: pyarrow's
    streaming reader parses on one core only, which made it the bottleneck.
    Values never contain newlines in these exports (quoted newlines are not supported).
    """
    header = read_header(src, fmt)
    types = {fmt.lat: pa.float64(), fmt.lon: pa.float64(), fmt.id: pa.string()}
    types.update({c: pa.float32() for c in fmt.static})
    types.update({c: pa.float32() for c in plan.date_columns})
    include = [fmt.id, fmt.lat, fmt.lon, *fmt.static, *plan.date_columns]
    read_opts = pacsv.ReadOptions(column_names=header, use_threads=True)
    parse_opts = pacsv.ParseOptions(delimiter=fmt.delimiter)
    conv_opts = pacsv.ConvertOptions(column_types=types, include_columns=include,
                                     null_values=list(fmt.na_values), strings_can_be_null=False,
                                     quoted_strings_can_be_null=False)
    row = 1
    try:
        with src.open_binary() as fh:
            for raw in _byte_blocks(fh, int(block_bytes)):
                table = pacsv.read_csv(pa.py_buffer(raw), read_options=read_opts, parse_options=parse_opts,
                                       convert_options=conv_opts)
                del raw
                n = table.num_rows
                if n == 0:
                    continue
                # Column by column into a (T, n) array, then one transpose: writing each
                # column into an (n, T) array directly is a strided scatter, ~2x slower.
                by_date = np.empty((len(plan.date_columns), n), dtype=np.float32)
                for j, c in enumerate(plan.date_columns):
                    by_date[j] = _column(table, c, np.float32)
                disp = np.ascontiguousarray(by_date.T)
                del by_date
                if fmt.to_mm != 1.0:
                    disp *= fmt.to_mm
                static = np.empty((n, len(fmt.static)), dtype=np.float32)
                for j, c in enumerate(fmt.static):
                    static[:, j] = _column(table, c, np.float32)
                pid_col = table.column(fmt.id)
                blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(pid_col)), 0)
                yield Block(row, pid_col.to_numpy(zero_copy_only=False).astype(object),
                            _column(table, fmt.lat, np.float64), _column(table, fmt.lon, np.float64),
                            static, disp, blank.to_numpy(zero_copy_only=False).astype(bool, copy=False))
                row += n
    except pa.ArrowInvalid as err:
        raise _locate_parse_error(err, src, plan, fmt) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read the file ({err})", file=src.label,
                         fix="check that it is a CSV (plain, .gz or .zip) and not truncated") from None


def prefetch(iterable, depth: int = 2):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead.

    pyarrow parses without the GIL, so the next CSV block is parsed on one
    core while the current one is keyed, sorted and spilled on the other.
    Exceptions are re-raised in the consumer.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in iterable:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as err:  # handed to the consumer
            q.put(err)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


_COL_RE = re.compile(r"In CSV column #(\d+)")


def _locate_parse_error(err: Exception, src: CsvInput, plan: ColumnPlan, fmt: Format) -> InputError:
    """Turn pyarrow's message into file/row/column by re-scanning (error path only)."""
    msg = str(err)
    if "Empty CSV file" in msg:
        return InputError("the file is empty", file=src.label, fix="re-export the data")
    m = _COL_RE.search(msg)
    numeric = {fmt.lat, fmt.lon, *fmt.static, *plan.date_columns}
    na = set(fmt.na_values)
    with src.open_binary() as fh:
        reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8-sig", newline=""), delimiter=fmt.delimiter)
        header = [h.strip() for h in next(reader)]
        cols = [header[int(m.group(1))]] if m and int(m.group(1)) < len(header) else [c for c in header if c in numeric]
        idx = [header.index(c) for c in cols]
        for r, values in enumerate(reader, start=1):
            if len(values) != len(header):
                return InputError(f"expected {len(header)} fields, found {len(values)}", file=src.label,
                                  row=r, fix="repair the line (a missing or extra delimiter)")
            for c, i in zip(cols, idx):
                v = values[i].strip()
                if v in na:
                    continue
                try:
                    float(v)
                except ValueError:
                    return InputError(f"cannot parse '{v}' as a number", file=src.label, row=r, column=c,
                                      fix="correct the value, or leave it empty/NaN if it is missing")
    return InputError(f"cannot parse the CSV ({msg})", file=src.label,
                      fix="check the delimiter and quoting of the file")
