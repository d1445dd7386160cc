"""`snakemake --profile slurm` from the repository root, planned without a cluster.

A dry run uses Snakemake's dry-run executor, so no SLURM command is needed;
the test puts failing stand-ins for sbatch/srun first on PATH to prove none is
called. It checks that the profile resolves by name after
scripts/setup-profile.sh, selects the slurm executor, and that every planned
job carries per-rule resources: memory and run time from the rules (growing
with the attempt and with the site's size), partition and account from the
environment, and the GPU partition for dsc.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# the module's dry runs share one plan: keep them on one xdist worker
pytestmark = pytest.mark.xdist_group("profile")

ENV_VARS = {
    "INSARCLUST_SLURM_PARTITION": "cpu-test",
    "INSARCLUST_SLURM_ACCOUNT": "proj42",
    "INSARCLUST_SLURM_GPU_PARTITION": "gpu-test",
}


@pytest.fixture(scope="module")
def profile_env(tmp_path_factory):
    """Environment for snakemake: test partitions, sbatch/srun stand-ins that record calls."""
    subprocess.run([str(ROOT / "scripts/setup-profile.sh")], check=True, cwd=ROOT,
                   capture_output=True, timeout=30)
    fake_bin = tmp_path_factory.mktemp("fake-slurm-bin")
    calls = fake_bin / "calls.log"
    for tool in ("sbatch", "srun", "scancel"):
        stub = fake_bin / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\nexit 1\n')
        stub.chmod(0o755)
    env = {**os.environ, **ENV_VARS,
           "PATH": f"{fake_bin}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                   f"{os.environ.get('PATH', '')}"}
    env.pop("SNAKEMAKE_PROFILE", None)
    if shutil.which("conda", path=env["PATH"]) is None:
        # `--sdm conda` needs `conda info` even for a dry run; this machine has no conda
        env["INSARCLUST_SLURM_CONDA"] = "0"
    yield env
    assert not calls.exists(), f"a dry run called SLURM: {calls.read_text()}"


def dry_run(env, *args, cwd=ROOT) -> str:
    proc = subprocess.run(
        ["timeout", "-k", "10", "240", str(SNAKEMAKE), "--profile", "slurm", "--dry-run",
         "--forceall", "--nolock", *args],
        cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


_JOB = re.compile(r"^(?:local)?rule (\w+):\s*$")


def parse_plan(text: str) -> list[dict]:
    """Jobs of a dry-run printout: [{rule, wildcards, resources: {name: value}}]."""
    jobs, job = [], None
    for line in text.splitlines():
        m = _JOB.match(line)
        if m:
            job = {"rule": m.group(1), "wildcards": "", "resources": {}}
            jobs.append(job)
        elif job is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "wildcards":
                job["wildcards"] = value
            elif key == "resources":
                job["resources"] = dict(kv.split("=", 1) for kv in value.split(", "))
        else:
            job = None
    return jobs


def job_stats(text: str) -> dict[str, int]:
    """The 'Job stats' table: rule -> number of jobs."""
    table = text.split("Job stats:", 1)[1]
    stats = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        stats[parts[0]] = int(parts[1])
    return stats


def by_job(jobs):
    return {(j["rule"], j["wildcards"]): j["resources"] for j in jobs}


@pytest.fixture(scope="module")
def plan(profile_env):
    return dry_run(profile_env)


def test_setup_makes_the_profile_name_resolve(profile_env):
    link = ROOT / "slurm"
    assert link.is_symlink() and link.resolve() == (ROOT / "profiles/slurm").resolve()
    # idempotent: a second run keeps the link
    subprocess.run([str(ROOT / "scripts/setup-profile.sh")], check=True, cwd=ROOT,
                   capture_output=True, timeout=30)
    assert link.resolve() == (ROOT / "profiles/slurm").resolve()


def test_profile_selects_slurm_executor_and_retries(profile_env, monkeypatch):
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    for k, v in ENV_VARS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("INSARCLUST_SLURM_CONDA", raising=False)
    _, args = parse_args(["--profile", "slurm", "--dry-run"])
    assert args.executor == "slurm"
    assert args.retries >= 1 and args.latency_wait >= 30 and args.jobs >= 10
    assert {str(m).lower().rpartition(".")[2] for m in args.software_deployment_method} == {"conda"}
    # rules import src/ through PYTHONPATH, which conda envs would otherwise drop
    assert args.conda_not_block_search_path_envvars is True
    assert set(args.set_resources["dsc"]) >= {"slurm_partition", "gpu"}

    monkeypatch.setenv("INSARCLUST_SLURM_CONDA", "0")
    _, args = parse_args(["--profile", "slurm", "--dry-run"])
    assert not args.software_deployment_method


def test_dry_run_plans_every_rule_with_per_rule_resources(plan):
    assert "Using profile slurm" in plan
    stats = job_stats(plan)
    jobs = parse_plan(plan)
    # every rule of the job table is printed with its resources
    assert {j["rule"] for j in jobs} == set(stats)
    assert sum(stats.values()) == len(jobs)
    expected_rules = {"demo_data", "shards", "graph", "descriptors", "embed_fit", "embed_part",
                      "embed_gather", "kmeans", "cluster_figures", "export_labels", "summary"}
    assert expected_rules <= set(stats)
    for job in jobs:
        if job["rule"] == "all":
            continue
        res = job["resources"]
        assert int(res["mem_mb"]) > 0 and int(res["runtime"]) > 0, job
        assert res["slurm_account"] == "proj42", job
        want = "gpu-test" if job["rule"] == "dsc" else "cpu-test"
        assert res["slurm_partition"] == want, job
        assert ("gpu" in res) == (job["rule"] == "dsc"), job
    if "dsc" in stats:
        assert all(j["resources"]["gpu"] == "1" for j in jobs if j["rule"] == "dsc")
    # resources are per rule, not one default for all
    assert len({j["resources"]["mem_mb"] for j in jobs if j["rule"] != "all"}) >= 4


def test_memory_grows_with_the_attempt_and_gpu_job_can_go_to_cpu(profile_env, plan):
    first = by_job(parse_plan(plan))
    third = by_job(parse_plan(dry_run(profile_env, "--attempt", "3", "--set-resources",
                                      "dsc:gpu=0", "dsc:slurm_partition=''")))
    assert first.keys() == third.keys()
    grown = 0
    for key, res in first.items():
        if key[0] == "all":
            continue
        mem1, mem3 = int(res["mem_mb"]), int(third[key]["mem_mb"])
        assert mem3 >= mem1, key
        grown += mem3 >= 2.5 * mem1
    assert grown >= len(first) // 2  # the rules' own requests scale with the attempt
    # the documented way to run dsc on a CPU node
    for key, res in third.items():
        if key[0] == "dsc":
            assert res["gpu"] == "0" and res["slurm_partition"] == ""


def test_requests_grow_with_the_site_size(profile_env, plan, tmp_path):
    """A 5-million-point site asks for more memory/time than the demo sites."""
    wd = tmp_path / "large"  # a fresh directory: no shards.h5 to count points from
    wd.mkdir()
    (wd / "size.yaml").write_text("demo:\n  n_points: 5000000\n")
    out = dry_run(profile_env, "-s", str(ROOT / "Snakefile"), "--directory", str(wd),
                  "--configfile", str(ROOT / "config/config.yaml"), str(wd / "size.yaml"),
                  "--config", f"sites={ROOT / 'config/sites.tsv'}",
                  f"formats={ROOT / 'config/formats.yaml'}")
    small, large = by_job(parse_plan(plan)), by_job(parse_plan(out))
    assert small.keys() == large.keys()
    # the rules whose measured cost grows with N (docs/performance.md, bench/site.py); the
    # streamed ones (kmeans, the figures) and those bounded by a batch keep their request
    grows = {"mem_mb": {"shards", "graph", "smooth", "baseline", "dsc"},
             "runtime": {"embed_part", "dsc", "baseline"}}
    for name in ("mem_mb", "runtime"):
        for key in small:
            assert int(large[key].get(name, 0)) >= int(small[key].get(name, 0)), (key, name)
        bigger = [k for k in small if int(large[k].get(name, 0)) > int(small[k].get(name, 0))]
        assert {k[0] for k in bigger} >= grows[name], name
    # generating a 5-million-point demo asks for a plausible node, not a terabyte
    assert all(int(res["mem_mb"]) < 100_000 for res in large.values()), large
