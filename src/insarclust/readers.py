"""Streaming CSV readers for plain, gzip and zip exports (EGMS ships zips).

A site's input is one or more files; a zip may hold several CSV members.
Each CSV is read in blocks of whole lines, each parsed by pyarrow on all
cores, so memory is bounded by the block size, never by the file.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import logging
import operator
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import InputError
from .formats import ColumnPlan, Format

log = logging.getLogger(__name__)


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
            member = zipfile.ZipFile(self.path).open(self.member)
            return gzip.GzipFile(fileobj=member, mode="rb") if self.member.lower().endswith(".gz") else member
        if is_gzip(self.path):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")


_MAGIC = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"PK\x05\x06": "zip"}


def _magic(path) -> str | None:
    """``gzip`` or ``zip`` by the file's first bytes (not its name), else None."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return next((kind for sig, kind in _MAGIC.items() if head.startswith(sig)), None)


def is_gzip(path) -> bool:
    """A gzip file by its content (a .GZ, or a gzip saved as .csv, too)."""
    return _magic(path) == "gzip"


def is_zip(path) -> bool:
    """A zip archive, by its content or its name (a named one that is not a zip gets the zip error)."""
    return _magic(path) == "zip" or str(path).lower().endswith(".zip")


def zip_csv_members(names) -> list[str]:
    """The members of a zip the reader takes, sorted: ``.csv`` and ``.csv.gz`` files, not macOS
    resource forks ('__MACOSX/', '._a.csv'), which are not the export's data."""
    return sorted(n for n in names if n.lower().endswith((".csv", ".csv.gz"))
                  and not n.startswith("__MACOSX") and not Path(n).name.startswith("._"))


# What else a CSV export may arrive as: decoded as text, it failed with an encoding or
# line-end error whose fix (iconv from latin-1, tr) was wrong.
_NOT_CSV = ((rb"BZh[1-9]1AY&SY", "bzip2-compressed", "bunzip2 a.csv.bz2"),
            (rb"\xfd7zXZ\x00", "xz-compressed", "unxz a.csv.xz"),
            (rb"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z x a.7z"),
            (rb"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd a.csv.zst"),
            (rb"Rar!\x1a\x07", "a RAR archive", "unrar x a.rar"))
_WIDE_TEXT = (b"\xff\xfe", b"\xfe\xff")   # UTF-16/UTF-32 byte-order marks


def _check_not_other_container(head: bytes, label: str) -> None:
    """Stop, naming what the bytes are, on an archive or UTF-16 text read as a CSV."""
    # ``head`` is what the reader unpacked: gzip or zip bytes here are a second layer (a .gz
    # gzipped again, as a download saved with the server's compression on can be, or an archive
    # stored under a .csv name); decoded as text they failed as 'not valid utf-8' with an iconv fix
    for sig, what, unpack in ((b"\x1f\x8b", "gzip data again", "gunzip -c a.csv.gz > once.csv.gz"),
                              (b"PK\x03\x04", "a zip archive", "unzip a.zip, or gunzip -c a.csv.gz > inner.zip")):
        if head.startswith(sig):
            raise InputError(f"the file is compressed twice: unpacked, it is {what}, not CSV text", file=label,
                             row=0, fix=f"unpack the outer layer ({unpack}) and point the site's source at the "
                                        "result, which the reader unpacks")
    for sig, what, unpack in _NOT_CSV:
        if re.match(sig, head, re.DOTALL):
            raise InputError(f"the file is {what}, which the reader does not unpack", file=label,
                             fix=f"unpack it ({unpack}) and point the site's source at the CSV, or compress it "
                                 "with gzip or zip (plain CSV, .gz and .zip are read)")
    if head[257:262] == b"ustar":   # a tar header's magic (gunzipped first for a .tar.gz)
        raise InputError("the file is a tar archive (.tar or .tar.gz), which the reader does not unpack",
                         file=label, fix="unpack it (tar xf a.tar.gz) and point the site's source at the CSV "
                                         "files, or zip or gzip each CSV (plain CSV, .gz and .zip are read)")
    if head.startswith(_WIDE_TEXT):
        raise InputError("the file is UTF-16 (or UTF-32) text, as Excel's 'Unicode Text' saves it", file=label,
                         row=0, fix="convert it: iconv -f utf-16 -t utf-8 in.csv > out.csv (Excel's Unicode "
                                    "Text is tab-separated: set delimiter: '\\t' in the format)")


def expand_inputs(paths) -> list[CsvInput]:
    """Files -> CSV streams; zips expand to their ``.csv`` members (sorted)."""
    out = []
    for p in paths:
        p = str(p)
        if not Path(p).exists():
            raise InputError("file not found", file=p, fix="fix the source path/glob in config/sites.tsv")
        if Path(p).is_dir():
            raise InputError("is a folder, not a file", file=p,
                             fix="make the site's source in config/sites.tsv match only the CSV, .gz or "
                                 ".zip files (e.g. data/site/*.csv instead of data/site/*)")
        if Path(p).stat().st_size == 0:
            raise InputError("the file is empty (0 bytes)", file=p,
                             fix="re-download or re-export it, or remove it from the site's source")
        if is_zip(p):
            try:
                with zipfile.ZipFile(p) as zf:
                    bad = zf.testzip()
                    names = [n for n in zf.namelist() if not n.endswith("/")]
                    members = zip_csv_members(names)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise InputError(f"cannot read the zip archive ({err})", file=p,
                                 fix="re-download the archive (it is truncated or not a zip)") from None
            except (NotImplementedError, RuntimeError) as err:   # Deflate64 (Windows, big files), encryption
                raise InputError(f"cannot unpack the zip archive ({err})", file=p,
                                 fix="unzip it with 7-Zip or unzip and point the site's source at the CSV, or "
                                     "re-zip it with plain deflate (e.g. zip a.zip a.csv)") from None
            if bad is not None:
                raise InputError(f"zip member '{bad}' is corrupt (CRC mismatch)", file=p,
                                 fix="re-download the archive")
            if not members:
                held = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") if names else "nothing"
                inner = [n for n in names if n.lower().endswith(".zip")]
                raise InputError(f"the zip archive holds no .csv file (it holds: {held})", file=p,
                                 fix=f"unzip it and point the site's source at the zips it holds "
                                     f"({inner[0]}, ...)" if inner else
                                 "point the site's source at the CSV export (a CSV under another name, e.g. "
                                 ".txt or .tsv: unzip it and name it .csv)")
            out += [CsvInput(p, m) for m in members]
        else:
            out.append(CsvInput(p))
    return out


def _text_encoding(fmt: Format) -> str:
    """Python codec of the format's encoding; UTF-8 may start with a byte-order mark."""
    return "utf-8-sig" if codecs.lookup(fmt.encoding).name == "utf-8" else fmt.encoding


def _encoding_fix(fmt: Format) -> str:
    return (f"the format '{fmt.name}' expects {fmt.encoding} text: convert the file, e.g. "
            f"iconv -f latin1 -t {fmt.encoding} in.csv > out.csv, or set encoding: <the file's encoding> "
            f"(e.g. latin-1 or cp1252) in the '{fmt.name}' block of config/formats.yaml")


# The header line must end within this many bytes (an EGMS header of 300 dates is ~3 kB).
MAX_HEADER_BYTES = 4 << 20


def read_header(src: CsvInput, fmt: Format) -> list[str]:
    """The header's fields; only the first line is decoded, so a bad byte further on is
    reported by the data reader with its row, not blamed on the header."""
    try:
        with src.open_binary() as fh:
            raw = fh.readline(MAX_HEADER_BYTES)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read the file ({err})", file=src.label,
                         fix="check that it is a CSV (plain, .gz or .zip) and not truncated") from None
    _check_not_other_container(raw, src.label)
    if not raw.endswith(b"\n"):
        if b"\r" in raw.rstrip(b"\r"):
            raise InputError("lines end in a carriage return only (old Mac line ends), so the file reads "
                             "as one line", file=src.label, row=0,
                             fix="convert the line ends, e.g. tr '\\r' '\\n' < in.csv > out.csv")
        if len(raw) >= MAX_HEADER_BYTES:
            raise InputError(f"no line end in the first {MAX_HEADER_BYTES >> 20} MB", file=src.label, row=0,
                             fix="check that the file is a CSV text export (one point per line)")
    try:
        text = raw.decode(_text_encoding(fmt))
    except UnicodeDecodeError as err:
        raise InputError(f"the header line is not valid {fmt.encoding} text (byte {err.object[err.start]:#04x})",
                         file=src.label, row=0, fix=_encoding_fix(fmt)) from None
    header = next(csv.reader([text.rstrip("\r\n")], delimiter=fmt.delimiter), None)
    if not header or all(not h.strip() for h in header):
        raise InputError("the file has no header line", file=src.label,
                         fix="the first line must name the columns")
    return header


# Lines searched for the header when the first line is not it (a preamble or comment lines).
HEADER_SEARCH_LINES = 50


def _shown(line: str, width: int = 80) -> str:
    return line if len(line) <= width else line[:width] + " ..."


def locate_header(src: CsvInput, fmt: Format) -> InputError | None:
    """Why the first line lacks the format's columns when the header is further down (a
    preamble or ``#`` comment lines above it) or the first line is a comment; None otherwise.
    Called on the error path of the header check only."""
    required = {fmt.id, *fmt.position_columns, *fmt.static}
    codec = _text_encoding(fmt)
    first = None
    try:
        with src.open_binary() as fh:
            for n, raw in enumerate(fh, start=1):
                if n > HEADER_SEARCH_LINES:
                    break
                text = raw.decode(codec, errors="replace").rstrip("\r\n")
                first = text if first is None else first
                fields = {f.strip() for f in next(csv.reader([text], delimiter=fmt.delimiter), [])}
                if n == 1 and required <= fields:
                    return None   # the first line is the header: its problem is another one
                if n > 1 and required <= fields:
                    return InputError(f"the header is on line {n} of the file; the {n - 1} line(s) above it "
                                      f"(first: {_shown(first)!r}) are not part of the CSV", file=src.label, row=0,
                                      fix=f"remove the lines above the header, e.g. tail -n +{n} in.csv > out.csv")
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, csv.Error):
        pass   # a truncated or corrupt stream, an oversized field: the lines read so far decide
    if first is not None and first.lstrip().startswith("#"):
        return InputError(f"the first line is a comment ({_shown(first)!r}), not the header", file=src.label, row=0,
                          fix="remove the comment lines, e.g. grep -v '^#' in.csv > out.csv; the first line "
                              "must name the columns")
    return None


@dataclass
class Block:
    """One parsed block of rows of one file (row numbers 1-based, header = row 0).

    With ``sort_by`` (:func:`to_block`) the arrays hold the rows in key order:
    ``order[i]`` is the position in the block (file order) of stored row ``i``
    and ``key`` holds the keys in file order.
    """

    first_row: int
    pid: np.ndarray        # (n,) object str
    lat: np.ndarray        # (n,) float64
    lon: np.ndarray        # (n,) float64
    static: np.ndarray     # (n, S) float32
    displacement: np.ndarray  # (n, T_file) float32 mm, NaN = missing
    blank_id: np.ndarray   # (n,) bool: the id is empty or whitespace only
    order: np.ndarray | None = None
    key: np.ndarray | None = None
    x: np.ndarray | None = None   # (n,) float64 projected coordinates as read (projected formats)
    y: np.ndarray | None = None
    # (n,) object str: the ids without surrounding spaces, where some id has them (else None):
    # 'P1 ' and 'P1' are one point to the repeated-id check, while the ids are kept as written
    pid_stripped: np.ndarray | None = None

    def first(self, mask: np.ndarray) -> tuple[int, int]:
        """(stored index, file row number) of the earliest row in the file where ``mask`` holds."""
        hits = np.flatnonzero(mask)
        i = int(hits[0]) if self.order is None else int(hits[np.argmin(self.order[hits])])
        return i, self.first_row + (i if self.order is None else int(self.order[i]))


def _column(batch: pa.RecordBatch, name: str, dtype) -> np.ndarray:
    # floating nulls become NaN in to_numpy
    return batch.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _byte_blocks(fh, block_bytes: int, ending: dict | None = None) -> Iterator[memoryview]:
    """Whole lines of a binary stream, about ``block_bytes`` at a time (header excluded).

    ``ending["unterminated"]`` is set when the stream's last line has no line end.

    Each block is read straight into one reused buffer (``readinto``) behind
    the partial line carried over from the previous one: slicing and
    concatenating ``bytes`` copied every block twice, and a fresh buffer per
    block is paid again in page faults. A yielded block is valid until the next
    one is requested (pyarrow copies what it parses).
    """
    fh.readline()  # the header (read_header parsed it)
    carry = b""
    buf = np.empty(0, dtype=np.uint8)
    while True:
        need = len(carry) + block_bytes
        if len(buf) < need:
            buf = np.empty(need + (1 << 20), dtype=np.uint8)   # room for the carried lines to vary
        view = memoryview(buf)[:need]
        view[:len(carry)] = carry
        filled = len(carry)
        while filled < need:
            got = fh.readinto(view[filled:])
            if not got:
                break
            filled += got
        cut = _last_newline(buf, filled)
        if filled < need:   # end of the stream
            # the last line may lack its newline; a whitespace-only tail is not a line
            unterminated = bool(view[cut + 1:filled].tobytes().strip())
            end = filled if unterminated else cut + 1
            if ending is not None:
                ending["unterminated"] = unterminated
            if end > 0:
                yield view[:end]
            return
        if cut < 0:   # no line end yet: carry everything on
            carry = view[:filled].tobytes()
            continue
        yield view[:cut + 1]
        carry = view[cut + 1:filled].tobytes()


def _rows_match_lines(raw, n_rows: int) -> bool:
    """Whether a parsed block has one row per non-empty line.

    Fast path: newlines counted 1 MB at a time into one small buffer (a
    block-sized temporary cost more in page faults than the count). Blank
    lines and lines joined by a quoted newline both give fewer rows than
    newlines, so only then are the empty lines counted.
    """
    b = np.frombuffer(raw, dtype=np.uint8)
    step = 1 << 20
    hits = np.empty(min(len(b), step), dtype=bool)
    newlines = 0
    for a in range(0, len(b), step):
        seg = b[a:a + step]
        newlines += int(np.count_nonzero(np.equal(seg, 10, out=hits[:len(seg)])))
    lines = newlines + (1 if len(b) and b[-1] != 10 else 0)
    return n_rows == lines or n_rows == _count_lines(b)


def _count_lines(b: np.ndarray) -> int:
    """Non-empty lines of a block of whole lines, split as pyarrow splits them: at ``\\n``,
    ``\\r\\n`` and a lone ``\\r``."""
    lf = b == 10
    lone_cr = (b == 13) & ~np.append(lf[1:], False)
    ends = np.flatnonzero(lf | lone_cr)
    if len(b) and not (lf[-1] or lone_cr[-1]):
        ends = np.append(ends, len(b))   # the last line without its line end
    starts = np.concatenate([[0], ends[:-1] + 1])
    length = ends - starts
    crlf = (length > 0) & (b[np.maximum(ends - 1, 0)] == 13)   # the \\r of a \\r\\n is not content
    return int(np.count_nonzero(length - crlf > 0))


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


def iter_tables(src: CsvInput, plan: ColumnPlan, fmt: Format,
                block_bytes: int = 64 << 20) -> Iterator[tuple[int, pa.Table]]:
    """``(first row number, pyarrow table)`` of the needed columns, block by block.

    The stream (plain, gunzipped or unzipped) is cut into blocks of whole lines
    and each block is parsed by ``pyarrow.csv.read_csv`` on all cores: pyarrow's
    streaming reader parses on one core only, which made it the bottleneck.
    Values never contain newlines in these exports, and quoted newlines are not
    supported: a block whose row count differs from its count of non-empty lines
    (a stray quote joined lines into one value) stops with the row that spans lines.
    """
    header = [h.strip() for h in read_header(src, fmt)]   # as plan_columns names them
    types = {c: pa.float64() for c in fmt.position_columns}
    types[fmt.id] = pa.string()
    types.update({c: pa.float32() for c in fmt.static})
    types.update({c: pa.float32() for c in plan.date_columns})
    include = [fmt.id, *fmt.position_columns, *fmt.static, *plan.date_columns]
    # a header that ends in a delimiter names no last column: fine while the rows leave it
    # empty (a trailing delimiter), but a value there would be dropped unseen
    unnamed = header[-1] if header[-1] == "" and len(header) > 1 else None
    if unnamed is not None:
        types[unnamed] = pa.string()
        include.append(unnamed)
    read_opts = pacsv.ReadOptions(column_names=header, use_threads=True,
                                  **({} if _text_encoding(fmt) == "utf-8-sig" else {"encoding": fmt.encoding}))
    parse_opts = pacsv.ParseOptions(delimiter=fmt.delimiter)
    # a quoted "" or "NaN" (pandas' QUOTE_ALL) is missing in a number column; ids stay text
    conv_opts = pacsv.ConvertOptions(column_types=types, include_columns=include,
                                     null_values=list(fmt.na_values), strings_can_be_null=False,
                                     quoted_strings_can_be_null=True)
    pool = _block_pool()
    row = 1
    ending: dict = {}
    try:
        with src.open_binary() as fh:
            for raw in _byte_blocks(fh, int(block_bytes), ending):
                table = pacsv.read_csv(pa.py_buffer(raw), read_options=read_opts, parse_options=parse_opts,
                                       convert_options=conv_opts, memory_pool=pool)
                if not _rows_match_lines(raw, table.num_rows):
                    raise _locate_parse_error(None, src, plan, fmt)
                del raw
                if unnamed is not None:
                    _check_unnamed_empty(table, unnamed, row, src, header)
                if table.num_rows:
                    yield row, table
                    row += table.num_rows
    except pa.ArrowInvalid as err:
        raise _locate_parse_error(err, src, plan, fmt) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read the file ({err})", file=src.label,
                         fix="check that it is a CSV (plain, .gz or .zip) and not truncated") from None
    if ending.get("unterminated"):
        # a copy cut inside the last value leaves a row that parses: only the missing line end tells
        log.warning("file %s: its last row (row %d) has no line end and is read as it stands; if the "
                    "file was cut short (an interrupted copy or download), that row's last values are "
                    "incomplete: compare the file's size with its source's", src.label, row - 1)


def _check_unnamed_empty(table: pa.Table, name: str, first_row: int, src: CsvInput, header) -> None:
    """Stop on the first row with a value in the header's unnamed last column."""
    filled = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(table.column(name))), 0), False)
    filled = filled.to_numpy(zero_copy_only=False)
    if filled.any():
        i = int(np.argmax(filled))
        raise InputError(f"the row holds a value ({table.column(name)[i].as_py()!r}) in its last field, which the "
                         f"header leaves unnamed (it ends in a delimiter after '{header[-2]}')", file=src.label,
                         row=first_row + i, fix="name the column in the header (e.g. the missing date), or remove "
                                                "the value; a trailing delimiter must leave the last field empty")


def _buffer(scratch: dict | None, name: str, shape: tuple) -> np.ndarray:
    """A float32 array of ``shape``: reused from ``scratch`` when it has room, else new."""
    if scratch is None:
        return np.empty(shape, dtype=np.float32)
    size = int(np.prod(shape))
    if name not in scratch or scratch[name].size < size:
        scratch[name] = np.empty(size, dtype=np.float32)
    return scratch[name][:size].reshape(shape)


def _block_pool():
    """pyarrow memory pool for the parsed blocks: jemalloc keeping freed pages for 10 s.

    Every block allocates and frees the same ~100 MB; the default pool hands freed
    pages back to the kernel at once, so each block faulted them in afresh (~10 %
    of the parse). Falls back to the default pool where jemalloc is not built in.
    """
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(10_000)
        return pool
    except (NotImplementedError, pa.ArrowNotImplementedError, AttributeError):
        return None


def to_block(table: pa.Table, first_row: int, plan: ColumnPlan, fmt: Format, sort_by=None,
             scratch: dict | None = None) -> Block:
    """numpy arrays of a parsed table; ``sort_by(lat, lon) -> keys``: store the rows in key
    order (stable), gathered while the columns are copied anyway.

    ``scratch``: a dict kept by the caller across blocks; the (n, T) series are
    then built in buffers reused from block to block (fresh 50 MB buffers cost
    as much in page faults as the copy), so ``displacement`` is valid until the
    next call with the same dict.
    """
    n = table.num_rows
    x = y = None
    if fmt.projected:
        from .coords import to_wgs84

        x = _column(table, fmt.x, np.float64)
        y = _column(table, fmt.y, np.float64)
        lat, lon = to_wgs84(x, y, fmt.crs)
    else:
        lat = _column(table, fmt.lat, np.float64)
        lon = _column(table, fmt.lon, np.float64)
    key = order = None
    if sort_by is not None:
        key = sort_by(lat, lon)
        order = np.argsort(key, kind="stable")
        lat, lon = lat[order], lon[order]
        if x is not None:
            x, y = x[order], y[order]
    # Column by column into a (T, n) array, then one transpose: writing each column
    # into an (n, T) array directly is a strided scatter, ~2x slower.
    by_date = _buffer(scratch, "by_date", (len(plan.date_columns), n))
    for j, c in enumerate(plan.date_columns):
        if order is None:
            by_date[j] = _column(table, c, np.float32)
        else:
            np.take(_column(table, c, np.float32), order, out=by_date[j])
    disp = _buffer(scratch, "disp", (n, len(plan.date_columns)))
    disp[...] = by_date.T
    del by_date
    if fmt.to_mm != 1.0:
        disp *= fmt.to_mm
    static = np.empty((n, len(fmt.static)), dtype=np.float32)
    for j, c in enumerate(fmt.static):
        col = _column(table, c, np.float32)
        static[:, j] = col if order is None else col[order]
    pid_col = table.column(fmt.id)
    trimmed = pc.utf8_trim_whitespace(pid_col)
    blank = pc.equal(pc.utf8_length(trimmed), 0)
    blank = blank.to_numpy(zero_copy_only=False).astype(bool, copy=False)
    pid = pid_col.to_numpy(zero_copy_only=False).astype(object)
    stripped = None
    if pc.any(pc.not_equal(trimmed, pid_col)).as_py():
        stripped = trimmed.to_numpy(zero_copy_only=False).astype(object)
    if order is not None:
        pid, blank = pid[order], blank[order]
        stripped = None if stripped is None else stripped[order]
    return Block(first_row, pid, lat, lon, static, disp, blank, order, key, x, y, stripped)


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


# What pyarrow reads as a float (after trimming spaces); Python's float() also takes
# "1_000" and non-ASCII digits, which pyarrow rejects.
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE | re.ASCII)


def _readable_row(na: set) -> re.Pattern:
    """Numeric cells joined by NUL that :func:`_unreadable` takes, every one (a subset: what
    it does not match is checked cell by cell)."""
    number = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf|infinity|nan))"
    missing = "|".join(re.escape(v) for v in sorted(na, key=len, reverse=True) if "\x00" not in v)
    cell = rf"(?:[ \t]*{number}[ \t]*" + (f"|{missing})" if missing else ")")
    return re.compile(rf"{cell}(?:\x00{cell})*", re.ASCII)


def _unreadable(value: str, na: set) -> bool:
    """A numeric cell pyarrow cannot read: not a missing-value text as written, and blank or not a
    number once pyarrow's trim (spaces and tabs only) is done. A missing-value text with spaces
    around it (' NA') is no missing value to pyarrow."""
    if value in na:
        return False
    v = value.strip(" \t")
    return not v or not _NUMBER.fullmatch(v)


def _locate_parse_error(err: Exception | None, src: CsvInput, plan: ColumnPlan, fmt: Format) -> InputError:
    """Turn pyarrow's message (``err``; None: rows and lines disagree) into file/row/column by
    re-scanning the file (error path only). Rows are numbered as the reader counts them:
    data rows from 1, blank lines not counted."""
    msg = str(err) if err is not None else "the rows parsed differ from the lines of the file"
    if "Empty CSV file" in msg:
        return InputError("the file is empty", file=src.label, fix="re-export the data")
    bad_text = _locate_bad_encoding(src, fmt)
    if bad_text is not None:
        return bad_text
    numeric = {*fmt.position_columns, *fmt.static, *plan.date_columns}
    na = set(fmt.na_values)
    with src.open_binary() as fh:
        reader = csv.reader(io.TextIOWrapper(fh, encoding=_text_encoding(fmt), newline=""),
                            delimiter=fmt.delimiter)
        header = [h.strip() for h in next(reader)]
        # every numeric cell of each row: pyarrow names the first column that fails in its block,
        # which need not hold the earliest bad row (a bad date in row 2, a bad height in row 4)
        numeric_idx = [(c, i) for i, c in enumerate(header) if c in numeric]
        # a row of readable cells in one regex call (C speed), the cell by cell check only for a row
        # it does not take: scanning a large file to its bad row cost 3x the csv parse otherwise
        take = operator.itemgetter(*(i for _, i in numeric_idx)) if numeric_idx else (lambda v: ())
        fine = _readable_row(na)
        r, line = 0, reader.line_num
        values_of = iter(reader)
        while True:
            try:
                values = next(values_of)
            except StopIteration:
                break
            except csv.Error:   # a quote that never closes runs into the field size limit
                return InputError(f"a quoted value opened on line {line + 1} of the file never closes: a stray "
                                  "quote (\")", file=src.label, row=r + 1,
                                  fix="remove the stray quote (values cannot span lines)")
            first_line, line = line + 1, reader.line_num
            if not values:   # a blank line: skipped by the reader, not a row
                continue
            r += 1
            if line > first_line:
                spans = next((header[i] if i < len(header) else f"field {i + 1}"
                              for i, v in enumerate(values) if "\n" in v or "\r" in v), None)
                return InputError(f"a quoted value runs over lines {first_line}-{line} of the file: a stray "
                                  "or unbalanced quote (\"), or a line break inside quotes", file=src.label,
                                  row=r, column=spans,
                                  fix="remove the stray quote or the line break inside the value (values "
                                      "cannot span lines)")
            if len(values) != len(header):
                text = fmt.delimiter.join(values)
                if "\x00" in text:   # a stretch of the file that was never written
                    return InputError(f"the line holds {text.count(chr(0))} NUL byte(s) (expected {len(header)} "
                                      f"fields, found {len(values)}): part of the file was never written, as an "
                                      "interrupted download or copy leaves it", file=src.label, row=r,
                                      fix="download or copy the file again (compare its size with its source's)")
                # spaces, a DOS end-of-file mark (Ctrl-Z), a form feed
                if not any(c.isprintable() and not c.isspace() for c in text):
                    return InputError(f"the line holds no values, only blank or control characters ({text!r})",
                                      file=src.label, row=r, fix="delete the line")
                if header[-1] == "" and len(values) == len(header) - 1:
                    # the header alone ends in a delimiter: it names one field more than the rows hold
                    return InputError(f"expected {len(header)} fields, found {len(values)}: the header line ends "
                                      f"in a delimiter ({fmt.delimiter!r}), which the rows do not", file=src.label,
                                      row=r, fix="remove the delimiter at the end of the header line")
                return InputError(f"expected {len(header)} fields, found {len(values)}", file=src.label,
                                  row=r, fix="repair the line (a missing or extra delimiter)")
            if [v.replace("\ufeff", "").strip() for v in values] == header:   # a joined file's BOM too
                return InputError(f"the header line is repeated on line {line} of the file (files joined "
                                  "with their headers?)", file=src.label, row=r,
                                  fix="remove the repeated header lines; to join exports keep the first "
                                      "header only, e.g. (head -n 1 a.csv; tail -q -n +2 a.csv b.csv) > joined.csv")
            # the earliest row's leftmost bad cell, whichever column pyarrow's threads named first
            cells = take(values)
            if fine.fullmatch("\x00".join(cells if isinstance(cells, tuple) else (cells,))):
                continue
            bad = [(c, i) for c, i in numeric_idx if _unreadable(values[i], na)]
            if not bad:
                continue
            c, i = bad[0]
            v = values[i].strip()
            if not v:
                return InputError(f"the cell holds only spaces ({values[i]!r})", file=src.label, row=r,
                                  column=c, fix="leave a missing value's cell empty (no spaces) or write NaN")
            fix = "correct the value, or leave it empty/NaN if it is missing"
            if v in na:
                fix = (f"{v!r} is a missing-value text of the format, here written with spaces or other "
                       f"blank characters around it: remove them, or add {values[i]!r} to na_values of format "
                       f"'{fmt.name}' in config/formats.yaml")
            if _DECIMAL_COMMA.fullmatch(v):   # a spreadsheet's locale: every number of the file is so
                grouped = _thousands_points(src, fmt, numeric_idx, na) if fmt.delimiter != "," else None
                if grouped is not None:
                    g_row, g_col, g_value = grouped
                    fix = (f"the file writes decimal commas (a spreadsheet's locale) and points as thousands "
                           f"separators ('{g_value}' in row {g_row}, column '{g_col}'): re-export it with decimal "
                           "points and no thousands separators (turning its commas into points, e.g. with sed, "
                           f"would read '{g_value}', {g_value.replace('.', '')}, as {float(g_value):g})")
                else:
                    fix = ("the file writes decimal commas (a spreadsheet's locale): re-export it with decimal "
                           "points" + (f", or convert them, e.g. sed 's/,/./g' in.csv > out.csv (the file's "
                                       f"delimiter is {fmt.delimiter!r})" if fmt.delimiter != "," else ""))
            shown = f"'{values[i]}'" if values[i].isprintable() else repr(values[i])   # a vertical tab shows
            return InputError(f"cannot parse {shown} as a number", file=src.label, row=r, column=c, fix=fix)
    return InputError(f"cannot parse the CSV ({msg})", file=src.label,
                      fix="check the delimiter and quoting of the file")


# A number grouped by points ('1.668' for 1668, no leading 0): in a file of decimal commas, a
# thousands separator. It reads as a valid number, so converting the commas to points (the fix
# offered for decimal commas) would read it 1000 times too small without any error.
_THOUSANDS_POINTS = re.compile(r"[+-]?[1-9]\d{0,2}(?:\.\d{3})+", re.ASCII)
THOUSANDS_SCAN_ROWS = 100_000


def _thousands_points(src: CsvInput, fmt: Format, numeric_idx, na: set) -> tuple[int, str, str] | None:
    """(row, column, value) of the first numeric cell written with thousands points among the
    first THOUSANDS_SCAN_ROWS rows (error path of a decimal comma only), or None."""
    with src.open_binary() as fh:
        reader = csv.reader(io.TextIOWrapper(fh, encoding=_text_encoding(fmt), errors="replace", newline=""),
                            delimiter=fmt.delimiter)
        next(reader, None)
        r = 0
        try:
            for values in reader:
                if not values:
                    continue
                r += 1
                if r > THOUSANDS_SCAN_ROWS:
                    break
                for c, i in numeric_idx:
                    if i < len(values) and values[i] not in na and _THOUSANDS_POINTS.fullmatch(values[i].strip()):
                        return r, c, values[i].strip()
        except csv.Error:   # a quote that never closes: the rows read so far decide
            pass
    return None


def _locate_bad_encoding(src: CsvInput, fmt: Format) -> InputError | None:
    """The first line that is not valid text in the format's encoding (row, column), or None."""
    codec = _text_encoding(fmt)
    with src.open_binary() as fh:
        for r, raw in enumerate(fh):
            try:
                raw.decode(codec)
            except UnicodeDecodeError as err:
                if r == 0:
                    return InputError(f"the header line is not valid {fmt.encoding} text", file=src.label,
                                      row=0, fix=_encoding_fix(fmt))
                fields = raw.decode(codec, errors="replace").rstrip("\r\n").split(fmt.delimiter)
                header = read_header(src, fmt)
                col = next((header[i] for i, f in enumerate(fields) if "\ufffd" in f and i < len(header)), None)
                return InputError(f"byte {err.object[err.start]:#04x} is not valid {fmt.encoding} text "
                                  f"(value {fields[header.index(col)] if col else '?'!r})", file=src.label,
                                  row=r, column=col, fix=_encoding_fix(fmt))
    return None
