"""Real SLURM runs through snakemake-executor-plugin-slurm (opt-in).

Skipped unless INSARCLUST_SLURM=1. Brings up a one-node cluster with
tests/slurm/start-local-slurm.sh (root, Debian, apt-get; no systemd needed),
runs workflows with ``snakemake --profile slurm --profile tests/slurm/profile``
and stops the daemons it started. Checks that jobs went through sbatch (job
ids in the executor's log, known to squeue, one SLURM log each), that dsc is
routed to the GPU partition with a GPU, that a failed job is resubmitted
asking for more memory, and that the tiny demo gives the same results on
SLURM as locally.

    INSARCLUST_SLURM=1 .venv/bin/pytest -m slurm tests/test_slurm.py
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from insarclust import h5io

from conftest import WORKFLOW_FILES, copy_workflow

ROOT = Path(__file__).resolve().parents[1]
SLURM_DIR = ROOT / "tests/slurm"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPY = (*WORKFLOW_FILES, "profiles")

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(os.environ.get("INSARCLUST_SLURM") != "1",
                       reason="needs a local SLURM cluster: set INSARCLUST_SLURM=1 (root, apt-get)"),
    pytest.mark.xdist_group("slurm"),
]


def _ok(*cmd) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def cluster():
    """A running one-node cluster; stopped afterwards unless it was up before."""
    was_up = _ok("scontrol", "ping") and _ok("sinfo")
    proc = subprocess.run(["timeout", "-k", "10", "300", str(SLURM_DIR / "start-local-slurm.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"SLURM bring-up failed:\n{proc.stdout}\n{proc.stderr}"
    try:
        yield
    finally:
        if not was_up:
            subprocess.run(["timeout", "-k", "10", "120", str(SLURM_DIR / "stop-local-slurm.sh")],
                           capture_output=True, text=True)


def slurm_env(**extra) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0", "INSARCLUST_SLURM_PARTITION": "main", **extra}
    env.pop("INSARCLUST_SLURM_ACCOUNT", None)
    env.pop("INSARCLUST_SLURM_GPU_PARTITION", None)  # the profile's default: "gpu"
    env.pop("SNAKEMAKE_PROFILE", None)
    if shutil.which("conda") is None:
        env["INSARCLUST_SLURM_CONDA"] = "0"  # no conda here: run in this Python env
    return env


def run_snakemake(workdir: Path, args: list[str], env: dict, limit_s: int) -> str:
    # `timeout -k`: the executor can wait for ever on a status command that
    # never answers, and snakemake ignores SIGTERM while it waits
    proc = subprocess.run(["timeout", "-k", "15", str(limit_s), SNAKEMAKE, *args],
                          cwd=workdir, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(workdir.glob("logs/**/*.log"))
                         if "Error" in p.read_text(errors="replace"))
        if "NotImplementedError" in logs:
            pytest.skip("a pipeline stage is not implemented yet:\n" + logs[-2000:])
        raise AssertionError(f"snakemake {' '.join(args)} exited {proc.returncode}:\n"
                             f"{out[-6000:]}\n{logs}")
    return out


def submitted(log: str) -> dict[str, list[str]]:
    """rule -> SLURM job ids, from the executor's 'submitted with SLURM jobid' lines.

    Submission lines may follow other rules' headers, so they are matched to
    rules through Snakemake's own job ids ("jobid: 3" in each rule header).
    """
    rule_of: dict[str, str] = {}
    rule = None
    out: dict[str, list[str]] = {}
    for line in log.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        m = re.match(r"^\s+jobid: (\d+)$", line)
        if m and rule:
            rule_of[m.group(1)] = rule
        m = re.search(r"Job (\d+) has been submitted with SLURM jobid (\d+)", line)
        if m:
            out.setdefault(rule_of[m.group(1)], []).append(m.group(2))
    return out


def squeue(job_ids) -> dict[str, dict]:
    """State, partition, memory (MB) and GPUs of finished jobs (kept for MinJobAge)."""
    proc = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids),
                           "-o", "%i|%T|%P|%m|%b|%C"],
                          capture_output=True, text=True, timeout=30, check=True)
    out = {}
    for line in proc.stdout.splitlines():
        jid, state, part, mem, tres, cpus = line.split("|")
        out[jid] = {"state": state, "partition": part, "mem": mem, "tres": tres, "cpus": int(cpus)}
    return out


def _mem_mb(text: str) -> int:
    m = re.fullmatch(r"(\d+)([MG]?)", text)
    return int(m.group(1)) * (1024 if m.group(2) == "G" else 1)


# --------------------------------------------------------------------------- #
# a fixture workflow: the executor and the profile, independent of the stages

FIXTURE_SNAKEFILE = """\
rule all:
    input: "out/a.txt", "out/dsc.txt", "out/flaky.txt"

rule a:
    output: "out/a.txt"
    threads: 1
    resources: mem_mb=300, runtime=5
    script: "report_env.py"

# named like the pipeline's GPU rule: the slurm profile routes it
rule dsc:
    output: "out/dsc.txt"
    threads: 1
    resources: mem_mb=300, runtime=5
    script: "report_env.py"

# fails on its first attempt; the retry must ask for twice the memory
rule flaky:
    output: "out/flaky.txt"
    threads: 1
    resources: mem_mb=lambda wc, attempt: 200 * attempt, runtime=5
    shell:
        "test {resources.mem_mb} -ge 400 || exit 3; "
        "echo job=$SLURM_JOB_ID mem_mb={resources.mem_mb} > {output}"
"""

REPORT_ENV = """\
import os
keys = ["SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_GPUS_ON_NODE", "SLURM_CPUS_PER_TASK"]
with open(snakemake.output[0], "w") as fh:
    fh.write(" ".join(f"{k}={os.environ.get(k, '')}" for k in keys) + "\\n")
"""


def _env_report(path: Path) -> dict:
    return dict(kv.split("=", 1) for kv in path.read_text().split())


def test_jobs_go_through_sbatch_with_gpu_routing_and_retries(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(FIXTURE_SNAKEFILE)
    (tmp_path / "report_env.py").write_text(REPORT_ENV)
    args = ["--profile", str(ROOT / "profiles/slurm"), "--profile", str(SLURM_DIR / "profile"),
            "--retries", "1"]
    t0 = time.perf_counter()
    log = run_snakemake(tmp_path, args, slurm_env(), limit_s=300)
    print(f"\nfixture workflow (4 SLURM jobs, one retried): {time.perf_counter() - t0:.0f} s")

    ids = submitted(log)
    assert set(ids) == {"a", "dsc", "flaky"}, log[-3000:]
    assert len(ids["a"]) == len(ids["dsc"]) == 1 and len(ids["flaky"]) == 2
    all_ids = [j for v in ids.values() for j in v]
    assert len(set(all_ids)) == len(all_ids) == 4
    jobs = squeue(all_ids)
    assert set(jobs) == set(all_ids)

    a, dsc = _env_report(tmp_path / "out/a.txt"), _env_report(tmp_path / "out/dsc.txt")
    assert a["SLURM_JOB_ID"] == ids["a"][0] and a["SLURM_JOB_PARTITION"] == "main"
    assert dsc["SLURM_JOB_ID"] == ids["dsc"][0] and dsc["SLURM_JOB_PARTITION"] == "gpu"
    assert dsc["SLURM_GPUS_ON_NODE"] == "1" and a["SLURM_GPUS_ON_NODE"] == ""
    assert jobs[ids["a"][0]]["state"] == jobs[ids["dsc"][0]]["state"] == "COMPLETED"
    assert _mem_mb(jobs[ids["a"][0]]["mem"]) == 300

    first, retry = ids["flaky"]
    assert jobs[first]["state"] == "FAILED" and jobs[retry]["state"] == "COMPLETED"
    assert (_mem_mb(jobs[first]["mem"]), _mem_mb(jobs[retry]["mem"])) == (200, 400)
    assert (tmp_path / "out/flaky.txt").read_text().split() == [f"job={retry}", "mem_mb=400"]
    # one SLURM log per job, where the profile puts them
    for rule, rule_ids in ids.items():
        for jid in rule_ids:
            assert (tmp_path / "logs/slurm" / f"rule_{rule}" / f"{jid}.log").exists()


# --------------------------------------------------------------------------- #
# the demo pipeline: SLURM against local


def make_workdir(dest: Path) -> Path:
    """A copy of the workflow with the tiny one-site SLURM test configuration."""
    copy_workflow(dest, COPY)
    shutil.copy2(SLURM_DIR / "sites.tsv", dest / "config/sites.tsv")
    shutil.copy2(SLURM_DIR / "config.yaml", dest / "config/slurm-test.yaml")
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "workflow under test"], check=True)
    subprocess.run([str(dest / "scripts/setup-profile.sh")], cwd=dest, check=True,
                   capture_output=True)
    return dest


def results_of(workdir: Path) -> dict:
    """Arrays and tables that must be equal between two runs."""
    out = {"summary.tsv": (workdir / "results/summary.tsv").read_text()}
    for path in sorted((workdir / "results").glob("*/clusters/*.h5")):
        out[str(path.relative_to(workdir))] = h5io.read_datasets(path, ["labels", "split"])
    for path in sorted((workdir / "results").glob("*/features/*.h5")):
        out[str(path.relative_to(workdir))] = h5io.read_datasets(path, ["X"])
    for path in sorted((workdir / "results").glob("*/clusters.csv")):
        out[str(path.relative_to(workdir))] = path.read_text()
    return out


def test_demo_on_slurm_equals_local_run(cluster, tmp_path):
    config = ["--configfile", "config/config.yaml", "config/slurm-test.yaml"]
    threads = yaml.safe_load((SLURM_DIR / "profile/config.yaml").read_text())["set-threads"]
    set_threads = ["--set-threads", *(f"{rule}={n}" for rule, n in threads.items())]

    # both runs from one snapshot of the working tree (it may change meanwhile)
    local = make_workdir(tmp_path / "local")
    remote = tmp_path / "slurm"
    shutil.copytree(local, remote, symlinks=True)
    t0 = time.perf_counter()
    run_snakemake(local, ["--cores", "2", *set_threads, *config], slurm_env(), limit_s=600)
    local_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    log = run_snakemake(remote, ["--profile", "slurm", "--profile", str(SLURM_DIR / "profile"),
                                 *config], slurm_env(), limit_s=900)
    print(f"\ntiny demo: local run {local_s:.0f} s, SLURM run {time.perf_counter() - t0:.0f} s")

    # every job but the target rule went through sbatch and completed
    stats = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+(\d+)", log, re.S)
    planned = {line.split()[0]: int(line.split()[1]) for line in stats.group(1).splitlines()}
    ids = submitted(log)
    assert {r: len(v) for r, v in ids.items()} == {r: n for r, n in planned.items() if r != "all"}
    assert len(ids["embed_part"]) == 2  # embed.n_jobs = 2: two SLURM jobs
    jobs = squeue([j for v in ids.values() for j in v])
    assert {j["state"] for j in jobs.values()} == {"COMPLETED"}
    assert {j["partition"] for j in jobs.values()} == {"main"}

    want, got = results_of(local), results_of(remote)
    assert want.keys() == got.keys() and any(k.endswith("kmeans-dyn.h5") for k in want)
    for key in want:
        if isinstance(want[key], dict):
            for name in want[key]:
                np.testing.assert_array_equal(got[key][name], want[key][name], err_msg=key)
        else:
            assert got[key] == want[key], key
