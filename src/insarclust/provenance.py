"""What produced a site's results: config, code, inputs, devices and wall times.

``results/{site}/provenance.json`` answers, months later, "which data, which
settings, which code version, on which hardware, how long": the resolved
config, the site row and its input format, package versions, sha256 of the
input files, the git commit of the workflow, the device each torch stage ran
on (from its metrics JSON or its log) and the wall time and peak memory of
every job (from the ``benchmarks/**.tsv`` files Snakemake writes).

Rule patterns (``benchmarks/kmeans/{site}.{variant}.tsv``) come from the
workflow, so a job's wildcards are recovered from its file name.
"""
from __future__ import annotations

import csv
import datetime
import glob
import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable, Mapping

from insarclust import h5io

log = logging.getLogger("insarclust.provenance")

PACKAGES = ("insarclust", "numpy", "scipy", "pandas", "pyarrow", "h5py", "scikit-learn", "torch",
            "torch-geometric", "matplotlib", "seaborn", "snakemake", "pyyaml", "jsonschema")

# A device named in a log line: "device: cuda", "device=cuda:0", "on device 'cpu'".
_DEVICE_RE = re.compile(r"\bdevice\b[\s:=]*(?:is\s+)?['\"]?(cuda(?::\d+)?|cpu|mps|xpu(?::\d+)?)\b",
                        re.IGNORECASE)


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None where not installed in this environment)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


CODE_PATHS = ("src", "scripts", "workflow", "Snakefile", "envs", "profiles")


def git_state(repo_dir) -> dict:
    """``{"commit": sha or "unknown", "dirty": bool | None}`` of the workflow checkout."""
    def _git(*args):
        return subprocess.run(["git", "-C", str(repo_dir), *args], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()

    try:
        commit = _git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    try:
        # changed tracked files anywhere, or new (untracked) files among the code; not
        # untracked data a user keeps in the checkout
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) or bool(
            _git("status", "--porcelain", "--untracked-files=normal", "--", *CODE_PATHS))
    except (OSError, subprocess.SubprocessError):
        dirty = None
    return {"commit": commit, "dirty": dirty}


def sha256_file(path, block_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks (memory independent of size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def input_checksums(shards_path, files: Iterable = (), hash_files: bool = True) -> dict:
    """``source_sha256`` recorded by the shards stage plus sha256 and size of ``files``.

    A file's sha256 comes from the shards stage's record (``source_files``), which read
    it anyway, when the file has the recorded size and is not newer than ``shards.h5``;
    otherwise the file is read again (a national catalogue takes minutes)."""
    attrs = h5io.read_attrs(shards_path)
    out = {"source_sha256": attrs.get("source_sha256"), "shards_attrs": {
        k: attrs[k] for k in ("site", "format", "n_points", "insarclust_version", "regularization")
        if k in attrs}, "files": []}
    recorded = {r["path"]: r for r in json.loads(attrs.get("source_files") or "[]")}
    built = os.path.getmtime(shards_path)
    for path in files:
        entry = {"path": str(path), "bytes": os.path.getsize(path)}
        known = recorded.get(str(Path(path).resolve()))
        if not hash_files:
            entry["sha256"] = None
        elif known and known["bytes"] == entry["bytes"] and os.path.getmtime(path) <= built:
            entry["sha256"] = known["sha256"]
        else:
            entry["sha256"] = sha256_file(path)
        out["files"].append(entry)
    return out


def strip_constraints(pattern: str) -> str:
    """``{site,[a-z]+}`` -> ``{site}`` (constraints may hold one level of ``{m,n}``)."""
    return re.sub(r"\{(\w+),(?:[^{}]|\{[^{}]*\})*\}", r"{\1}", pattern)


def _pattern_regex(pattern: str, site: str) -> tuple[str, re.Pattern]:
    """Glob and regex (named groups = wildcards) of a rule's file pattern for one site."""
    fixed = strip_constraints(pattern).replace("{site}", site)
    glob_pattern = re.sub(r"\{[^}]+\}", "*", fixed)
    regex, pos, seen = "", 0, set()
    for m in re.finditer(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", fixed):
        name = m.group(1)
        group = f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)"
        seen.add(name)
        regex += re.escape(fixed[pos:m.start()]) + group
        pos = m.end()
    regex += re.escape(fixed[pos:]) + "$"
    return glob_pattern, re.compile(regex)


def find_rule_files(patterns: Mapping[str, str], site: str) -> list[tuple[str, dict, Path]]:
    """``(rule, wildcards, path)`` for every existing file matching a rule pattern for ``site``.

    Only patterns that name ``{site}`` are used: files of other sites never match.
    """
    found = []
    for rule, pattern in patterns.items():
        if not pattern or "{site}" not in strip_constraints(pattern):
            continue
        glob_pattern, regex = _pattern_regex(pattern, site)
        for path in sorted(glob.glob(glob_pattern)):
            m = regex.match(Path(path).as_posix())
            if m:
                found.append((rule, m.groupdict(), Path(path)))
    return found


def read_benchmark(path) -> dict:
    """One Snakemake benchmark TSV -> ``{"wall_s", "max_rss_mb", "cpu_time_s"}`` (last repeat)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows:
        return {}
    row = rows[-1]

    def num(key):
        try:
            value = float(row.get(key, "nan"))
        except ValueError:
            return None
        return None if value != value else value

    return {"wall_s": num("s"), "max_rss_mb": num("max_rss"), "cpu_time_s": num("cpu_time")}


_TORCH_RE = re.compile(r"torch device: .*, torch (\S+)")


# A warning line of a rule's log (insarclust.logs' format: time, level, logger, message)
_WARNING_RE = re.compile(r"^\S+ \S+ WARNING \S+?: (.*)$")
# Warnings kept per stage (a stage of many jobs repeats them; the logs hold them all)
MAX_STAGE_WARNINGS = 10


def scan_log(path) -> tuple[str | None, str | None, list[str]]:
    """The last device and the last torch version named in a log file (None where none is),
    and its warning messages in order (first line of each)."""
    device = version = None
    warnings = []
    with open(path, errors="replace") as fh:
        for line in fh:
            if m := _DEVICE_RE.search(line):
                device = m.group(1).lower()
            if m := _TORCH_RE.search(line):
                version = m.group(1)
            if m := _WARNING_RE.match(line.rstrip("\n")):
                warnings.append(m.group(1))
    return device, version, warnings


def device_from_log(path) -> str | None:
    """The last device named in a log file (None when it names none)."""
    return scan_log(path)[0]


def device_from_result(result: Mapping) -> str | None:
    """``device`` of a metrics JSON (top level or under ``run``/``training``)."""
    for holder in (result, result.get("run") or {}, result.get("training") or {}):
        if isinstance(holder, Mapping) and isinstance(holder.get("device"), str):
            return holder["device"]
    return None


def _method_of_job(rule: str, wildcards: Mapping) -> str | None:
    """The method a job's files belong to (None: a job every method shares)."""
    if "method" in wildcards:
        return wildcards["method"]
    if "variant" in wildcards:
        return f"kmeans-{wildcards['variant']}"
    if "baseline" in wildcards:
        return wildcards["baseline"]
    if rule == "dsc" or rule.endswith("_dsc") or rule.startswith("dsc_"):
        return "dsc"
    return None


def _of_current_methods(rule: str, wildcards: Mapping, methods: set) -> bool:
    """False for the benchmark/log files of a method this run no longer has (a variant
    left out, DSC turned off): they are a former run's, not this one's."""
    if not methods:
        return True
    method = _method_of_job(rule, wildcards)
    return method is None or method in methods


def stage_records(rules: Mapping[str, Mapping], site: str, metrics_paths: Iterable = (),
                  configured_device: str | None = None) -> dict:
    """Per rule: jobs, total wall time, peak memory, device, and per-job entries.

    ``rules``: ``{rule: {"benchmark": pattern, "log": pattern, "device": bool, "code": digest}}``
    (from the workflow; ``device``: the rule picks a torch device; ``code``: the digest of the
    script and library code the rule runs, recorded as the stage's ``code``). Such a
    rule's device comes from its metrics JSON or its log, else from the
    configured device when that is explicit (``cpu``, ``cuda:1``: the stage
    fails rather than fall back); the other rules run on the CPU.
    """
    results_device = {}
    for path in metrics_paths:
        with open(path) as fh:
            result = json.load(fh)
        device = device_from_result(result)
        if device:
            results_device[Path(path).stem] = device

    stages: dict[str, dict] = {}
    methods = {Path(p).stem for p in metrics_paths}

    def current_files(kind: str):
        return [f for f in find_rule_files({r: v.get(kind) for r, v in rules.items()}, site)
                if _of_current_methods(f[0], f[1], methods)]

    for rule, wildcards, path in current_files("benchmark"):
        record = read_benchmark(path)
        stage = stages.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "max_rss_mb": None, "job_list": []})
        stage["jobs"] += 1
        stage["wall_s"] += record.get("wall_s") or 0.0
        rss = record.get("max_rss_mb")
        if rss is not None:
            stage["max_rss_mb"] = max(stage["max_rss_mb"] or 0.0, rss)
        job_wc = {k: v for k, v in wildcards.items() if k != "site"}
        stage["job_list"].append({"wildcards": job_wc, "benchmark": path.as_posix(), **record})

    devices: dict[str, set] = {}
    torch_versions: dict[str, set] = {}
    warned: dict[str, list] = {}
    for rule, wildcards, path in current_files("log"):
        device, version, messages = scan_log(path)
        if device:
            devices.setdefault(rule, set()).add(device)
        if version:
            torch_versions.setdefault(rule, set()).add(version)
        for message in messages:
            kept = warned.setdefault(rule, [])
            if message not in kept and len(kept) < MAX_STAGE_WARNINGS:
                kept.append(message)
    for rule, info in rules.items():
        if rule not in stages and rule not in devices:
            continue
        stage = stages.setdefault(rule, {"jobs": 0, "wall_s": None, "max_rss_mb": None, "job_list": []})
        if warned.get(rule):
            # what the stage's logs warned of (a report reader sees no log): kept only when any
            stage["warnings"] = warned[rule]
        found = set(devices.get(rule, set()))
        found |= {d for method, d in results_device.items() if method == rule or method.startswith(rule)}
        if info.get("code"):
            stage["code"] = info["code"]
        if torch_versions.get(rule):
            # the stage's own environment (a conda env per rule on a cluster), not provenance's
            stage["torch"] = ", ".join(sorted(torch_versions[rule]))
        if found:
            stage["device"] = ", ".join(sorted(found))
        elif not info.get("device"):
            stage["device"] = "cpu"
        elif configured_device and configured_device != "auto":
            stage["device"] = configured_device
        else:
            stage["device"] = "not recorded (device: auto)"
    for stage in stages.values():
        if stage["wall_s"] is not None:
            stage["wall_s"] = round(stage["wall_s"], 3)
    return dict(sorted(stages.items()))


def build_provenance(site: str, *, config: Mapping, site_row: Mapping | None = None,
                     input_format: Mapping | None = None, shards_path, source_files: Iterable = (),
                     extra_files: Iterable = (), metrics_paths: Iterable = (),
                     rules: Mapping[str, Mapping] | None = None, repo_dir=None,
                     hash_files: bool = True) -> dict:
    """The provenance record of one site (JSON-ready)."""
    metrics_paths = list(metrics_paths)
    files = [*source_files, *extra_files]
    return {
        "site": site,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "site_row": dict(site_row or {}),
        "input_format": input_format,
        "config": config,
        "git": git_state(repo_dir) if repo_dir is not None else {"commit": "unknown", "dirty": None},
        "packages": package_versions(),
        "packages_note": ("versions in the environment of the provenance job; with a conda env per rule "
                          "the torch stages' own torch version is under stages.<rule>.torch"),
        "environment": {"python_executable": sys.executable, "platform": platform.platform()},
        "inputs": input_checksums(shards_path, files, hash_files=hash_files),
        "stages": stage_records(rules or {}, site, metrics_paths, configured_device=config.get("device")),
        "methods": [Path(p).stem for p in metrics_paths],
    }
