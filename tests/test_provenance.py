import hashlib
import json
import subprocess

import pytest

from conftest import make_shards_file
from insarclust import provenance
from insarclust.jsonio import write_json

RULES = {
    "shards": {"benchmark": "benchmarks/shards/{site}.tsv", "log": "logs/shards/{site}.log", "device": False},
    "kmeans": {"benchmark": "benchmarks/kmeans/{site}.{variant}.tsv",
               "log": "logs/kmeans/{site}.{variant}.log", "device": False},
    "embed_part": {"benchmark": "benchmarks/embed/{site}.{part}-of-{n}.tsv",
                   "log": "logs/embed/{site}.{part}-of-{n}.log", "device": True},
    "smooth": {"benchmark": "benchmarks/smooth/{site}.{base}.tsv",
               "log": "logs/smooth/{site}.{base}.log", "device": True},
    "dsc": {"benchmark": "benchmarks/dsc/{site}.tsv", "log": "logs/dsc/{site}.log", "device": True},
    "summary": {"benchmark": None, "log": "logs/summary.log", "device": False},
}

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, seconds, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{seconds / 2}\n")


def _log(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _bench(tmp_path / "benchmarks/shards/demo-a.tsv", 4.5, 300.0)
    _bench(tmp_path / "benchmarks/shards/demo-ab.tsv", 99.0, 1.0)  # another site, same prefix
    _bench(tmp_path / "benchmarks/kmeans/demo-a.dyn.tsv", 2.0, 200.0)
    _bench(tmp_path / "benchmarks/kmeans/demo-a.dyn+static_smoothed.tsv", 3.0, 250.0)
    _bench(tmp_path / "benchmarks/embed/demo-a.1-of-2.tsv", 10.0, 800.0)
    _bench(tmp_path / "benchmarks/embed/demo-a.2-of-2.tsv", 11.0, 900.0)
    _bench(tmp_path / "benchmarks/dsc/demo-a.tsv", 30.0, 1500.0)
    _log(tmp_path / "logs/embed/demo-a.1-of-2.log", "2025 INFO insarclust: torch device: cuda:0 (H200), "
                                                    "torch 2.13.0+cu130\n")
    _log(tmp_path / "logs/embed/demo-a.2-of-2.log", "2025 INFO insarclust: device=cuda:0 batch 1024\n")
    _log(tmp_path / "logs/dsc/demo-a.log", "INFO nothing about it\n")
    _log(tmp_path / "logs/shards/demo-a.log", "INFO read 3 files\n")
    metrics = tmp_path / "results/demo-a/clusters/dsc.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"method": "dsc", "device": "cpu", "metrics": {}}))
    for method in METHODS[1:]:
        (metrics.parent / f"{method}.json").write_text(json.dumps({"method": method, "metrics": {}}))
    return tmp_path


METHODS = ["dsc", "kmeans-dyn", "kmeans-dyn+static_smoothed"]


def _metrics(workdir, methods=METHODS):
    return [workdir / f"results/demo-a/clusters/{m}.json" for m in methods]


def test_stale_files_of_methods_this_run_no_longer_has_are_not_counted(workdir):
    """A variant left out and DSC turned off: their old benchmark and log files stay on disk
    but are not this run's jobs (they were counted, with their device and time)."""
    _log(workdir / "logs/dsc/demo-a.log", "INFO torch device: cuda (H200)\n")
    stages = provenance.stage_records(RULES, "demo-a", _metrics(workdir, ["kmeans-dyn"]))
    assert "dsc" not in stages
    assert stages["kmeans"]["jobs"] == 1 and stages["kmeans"]["wall_s"] == 2.0
    assert stages["shards"]["jobs"] == 1 and stages["embed_part"]["jobs"] == 2   # shared jobs stay


def test_stage_records(workdir):
    stages = provenance.stage_records(RULES, "demo-a", _metrics(workdir))
    assert set(stages) == {"shards", "kmeans", "embed_part", "dsc"}
    assert stages["shards"]["jobs"] == 1 and stages["shards"]["wall_s"] == 4.5  # not demo-ab's 99
    assert stages["kmeans"]["jobs"] == 2 and stages["kmeans"]["wall_s"] == 5.0
    assert stages["kmeans"]["max_rss_mb"] == 250.0
    assert {tuple(j["wildcards"].items()) for j in stages["kmeans"]["job_list"]} == {
        (("variant", "dyn"),), (("variant", "dyn+static_smoothed"),)}
    embed = stages["embed_part"]
    assert embed["jobs"] == 2 and embed["wall_s"] == 21.0 and embed["max_rss_mb"] == 900.0
    assert embed["job_list"][0]["wildcards"] == {"part": "1", "n": "2"}
    assert embed["job_list"][0]["cpu_time_s"] == 5.0
    # devices: from logs (embed), from the metrics JSON (dsc), cpu for non-torch rules
    assert embed["device"] == "cuda:0" and embed["torch"] == "2.13.0+cu130"
    assert stages["dsc"]["device"] == "cpu"
    assert stages["shards"]["device"] == "cpu"


def test_device_rule_without_record(workdir):
    _bench(workdir / "benchmarks/smooth/demo-a.dyn.tsv", 1.0, 100.0)
    stages = provenance.stage_records(RULES, "demo-a")
    assert stages["smooth"]["device"] == "not recorded (device: auto)"
    # an explicit device is what the stage ran on (it fails rather than fall back)
    stages = provenance.stage_records(RULES, "demo-a", configured_device="cuda:1")
    assert stages["smooth"]["device"] == "cuda:1"
    assert stages["embed_part"]["device"] == "cuda:0"  # a record wins


def test_device_regex(tmp_path):
    cases = {"device: cuda": "cuda", "using device 'cpu'": "cpu", "torch device=cuda:1 ok": "cuda:1",
             "Device is CUDA": "cuda", "devices: 4": None, "no mention": None}
    for text, expect in cases.items():
        (tmp_path / "x.log").write_text(text + "\n")
        assert provenance.device_from_log(tmp_path / "x.log") == expect, text


def test_checksums(tmp_path):
    shards, _ = make_shards_file(tmp_path / "shards.h5", n=300, n_grid=10, shard_size=128)
    src = tmp_path / "a.csv"
    src.write_bytes(b"pid,lat\n1,2\n" * 1000)
    out = provenance.input_checksums(shards, [src])
    assert out["source_sha256"] == "0" * 64
    assert out["shards_attrs"]["n_points"] == 300
    assert out["files"] == [{"path": str(src), "bytes": src.stat().st_size,
                             "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}]
    # block-wise hashing equals the one-shot hash for any block size
    assert provenance.sha256_file(src, block_bytes=7) == hashlib.sha256(src.read_bytes()).hexdigest()
    assert provenance.input_checksums(shards, [src], hash_files=False)["files"][0]["sha256"] is None


def test_git_state(tmp_path):
    assert provenance.git_state(tmp_path) == {"commit": "unknown", "dirty": None}
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(tmp_path)}
    run = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, env=env,
                                    capture_output=True, text=True).stdout.strip()
    run("init", "-q")
    (tmp_path / "f").write_text("1")
    run("add", "f")
    run("commit", "-q", "-m", "x")
    head = run("rev-parse", "HEAD")
    assert provenance.git_state(tmp_path) == {"commit": head, "dirty": False}
    # untracked data in the checkout is not a code change; a new module is
    (tmp_path / "data.csv").write_text("x")
    assert provenance.git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "new.py").write_text("x = 1")
    assert provenance.git_state(tmp_path) == {"commit": head, "dirty": True}
    (tmp_path / "src" / "new.py").unlink()
    (tmp_path / "f").write_text("2")
    assert provenance.git_state(tmp_path) == {"commit": head, "dirty": True}


def test_build_and_write(workdir):
    shards, _ = make_shards_file(workdir / "results/demo-a/shards.h5", n=300, n_grid=10, shard_size=128)
    config = {"seed": 42, "smooth": {"H": 3}}
    rec = provenance.build_provenance(
        "demo-a", config=config, site_row={"site": "demo-a", "source": "demo:mainland", "format": "ngu"},
        input_format={"id": "pid"}, shards_path=shards,
        metrics_paths=[workdir / "results/demo-a/clusters/dsc.json"], rules=RULES, repo_dir=workdir)
    write_json(rec, workdir / "results/demo-a/provenance.json")
    back = json.loads((workdir / "results/demo-a/provenance.json").read_text())
    assert back["config"] == config
    assert back["git"]["commit"] == "unknown"
    assert back["packages"]["numpy"] and back["packages"]["python"]
    assert back["packages"]["insarclust"]
    assert back["stages"]["embed_part"]["device"] == "cuda:0"
    assert back["methods"] == ["dsc"]
    assert back["inputs"]["source_sha256"] == "0" * 64


def test_patterns_with_wildcard_constraints(workdir):
    rules = {"kmeans": {"benchmark": "benchmarks/kmeans/{site,demo-a|demo-ab}.{variant,dyn|dyn\\+static}.tsv",
                        "log": None, "device": False},
             "embed_part": {"benchmark": "benchmarks/embed/{site,[a-z-]+}.{part,[0-9]{1,3}}-of-{n,[0-9]+}.tsv",
                            "log": None, "device": True}}
    assert provenance.strip_constraints(rules["embed_part"]["benchmark"]) == \
        "benchmarks/embed/{site}.{part}-of-{n}.tsv"
    stages = provenance.stage_records(rules, "demo-a")
    assert stages["kmeans"]["jobs"] == 2 and stages["embed_part"]["jobs"] == 2


def test_checksums_reuse_the_shards_stage_record(tmp_path, monkeypatch):
    """The shards stage hashes each input as it reads it; provenance reuses that unless the
    file changed since (size, or newer than shards.h5), instead of reading a catalogue again."""
    import os

    from insarclust.demo import generate
    from insarclust.formats import get_format, load_formats
    from insarclust.shards import build_shards

    from conftest import ROOT

    fmt = get_format("ngu", load_formats(ROOT / "config" / "formats.yaml"))
    table, _ = generate("p", "mainland", fmt, n_points=200, years=1.5, seed=2)
    src = tmp_path / "a.csv"
    table.to_csv(src, index=False)
    build_shards([src], fmt, tmp_path / "shards.h5", "p")
    truth = hashlib.sha256(src.read_bytes()).hexdigest()
    reads = []
    real = provenance.sha256_file
    monkeypatch.setattr(provenance, "sha256_file", lambda p, **kw: reads.append(p) or real(p, **kw))
    out = provenance.input_checksums(tmp_path / "shards.h5", [src])
    assert out["files"][0]["sha256"] == truth and reads == []
    # same size, other bytes, written after shards.h5: read again
    data = bytearray(src.read_bytes())
    data[-3] = ord("7") if data[-3] != ord("7") else ord("8")
    src.write_bytes(bytes(data))
    later = os.path.getmtime(tmp_path / "shards.h5") + 5
    os.utime(src, (later, later))
    out = provenance.input_checksums(tmp_path / "shards.h5", [src])
    assert reads == [src] and out["files"][0]["sha256"] == hashlib.sha256(bytes(data)).hexdigest() != truth


def test_a_file_of_another_size_is_hashed_again_whatever_its_time(tmp_path):
    """A source replaced by one of another size but an older modification time (copied with
    its times kept: cp -p, rsync -t, an unpacked archive) is not the file the shards stage
    hashed: its recorded sha256 must not be reused."""
    import os

    from insarclust.demo import generate
    from insarclust.formats import get_format, load_formats
    from insarclust.shards import build_shards

    from conftest import ROOT

    fmt = get_format("ngu", load_formats(ROOT / "config" / "formats.yaml"))
    table, _ = generate("p", "mainland", fmt, n_points=100, years=1.5, seed=2)
    src = tmp_path / "a.csv"
    table.to_csv(src, index=False)
    build_shards([src], fmt, tmp_path / "shards.h5", "p")
    src.write_bytes(src.read_bytes() + b"\n")
    earlier = os.path.getmtime(tmp_path / "shards.h5") - 100
    os.utime(src, (earlier, earlier))
    out = provenance.input_checksums(tmp_path / "shards.h5", [src])
    assert out["files"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_benchmark_of_repeated_runs_reports_the_last(tmp_path):
    path = tmp_path / "b.tsv"
    path.write_text(BENCH_HEADER + "9.0\t0:00:09\t900\t1\t1\t1\t0\t0\t50\t4.0\n"
                    + "2.0\t0:00:02\t200\t1\t1\t1\t0\t0\t50\t1.0\n")
    assert provenance.read_benchmark(path) == {"wall_s": 2.0, "max_rss_mb": 200.0, "cpu_time_s": 1.0}


def test_device_auto_is_not_recorded_as_a_device(workdir):
    """``device: auto`` lets a torch stage choose; without a log or metrics line naming its
    choice, provenance says it was not recorded rather than calling "auto" a device."""
    _bench(workdir / "benchmarks/smooth/demo-a.dyn.tsv", 1.0, 100.0)
    stages = provenance.stage_records(RULES, "demo-a", configured_device="auto")
    assert stages["smooth"]["device"] == "not recorded (device: auto)"


def test_json_records_write_sets_in_sorted_order(tmp_path):
    """A set in a record (the methods of a run, a set of columns) is written as a sorted list:
    a set's iteration order follows the process's string hashing, so the same record written by
    two runs would otherwise differ in bytes."""
    from insarclust.jsonio import to_jsonable

    names = {"raw-kmeans", "dsc", "kmeans-dyn", "pca-kmeans", "descriptors-kmeans", "kmeans-dyn+static",
             "raw-kmeans_smoothed", "kmeans-dyn_smoothed"}
    assert to_jsonable({"methods": names}) == {"methods": sorted(names)}
    assert to_jsonable(frozenset({3, 1, 2})) == [1, 2, 3]
    write_json({"methods": names}, tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text())["methods"] == sorted(names)


def test_warnings_of_a_stages_logs_reach_the_record_and_the_report(workdir):
    """A report reader sees no log: what a stage warned of (a graph leaving points barely
    smoothed, a file covering part of the period) is listed per stage, each message once."""
    from insarclust.summary import provenance_html

    line = "2026-12-01 06:38:32,952 WARNING insarclust.graph: graph: 837 of 4000 points weigh one neighbour"
    _log(workdir / "logs/kmeans/demo-a.dyn.log", f"2026-12-01 06:38:30,001 INFO insarclust: start\n{line}\n")
    _log(workdir / "logs/kmeans/demo-a.dyn+static_smoothed.log",
         f"{line}\n2026-12-01 06:38:33,000 WARNING insarclust.kmeans: k <b>2</b>: an empty cluster\n")
    stages = provenance.stage_records(RULES, "demo-a", _metrics(workdir))
    assert stages["kmeans"]["warnings"] == ["graph: 837 of 4000 points weigh one neighbour",
                                            "k <b>2</b>: an empty cluster"]
    assert "warnings" not in stages["shards"] and "warnings" not in stages["dsc"]
    page = provenance_html({"stages": stages})
    assert "<li>kmeans: graph: 837 of 4000 points weigh one neighbour</li>" in page
    assert "k &lt;b&gt;2&lt;/b&gt;" in page
    assert "warnings in this site" not in provenance_html({"stages": provenance.stage_records(
        {r: v for r, v in RULES.items() if r != "kmeans"}, "demo-a", _metrics(workdir))})
