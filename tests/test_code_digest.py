"""The code digest that reruns a stage after an upgrade of the library it imports."""
from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from insarclust import code_digest as cd

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "insarclust"


def test_canonical_leaves_out_positions_empty_fields_and_docstrings():
    text = cd.canonical(ast.parse('"""Module doc."""\nx = 1  # one\n'))
    assert text == "Module(body=[Assign(targets=[Name(id='x',ctx=Store())],value=Constant(value=1))])"
    relaid = cd.canonical(ast.parse("def f(a):\n    'doc'\n    # note\n\n    return a\n"))
    assert relaid == cd.canonical(ast.parse("def f(a): return a"))
    # a string that is not the first statement is code, not a docstring
    assert cd.canonical(ast.parse("def f():\n    x = 1\n    'y'\n")) != cd.canonical(ast.parse("def f():\n    x = 1\n"))


def test_script_modules_follow_imports_through_modules_and_packages():
    graph = cd.script_modules(ROOT / "scripts/graph.py", PACKAGE)
    assert {"insarclust", "insarclust.graph", "insarclust.geodesy"} <= set(graph)
    # a stage imports only what it runs: the graph does not run the embedding or DSC
    assert not {"insarclust.embed", "insarclust.reservoir", "insarclust.dsc"} & set(graph)
    dsc = set(cd.script_modules(ROOT / "scripts/dsc.py", PACKAGE))
    # the dsc package's relative imports (from .model import ...) and its own imports
    assert {"insarclust.dsc", "insarclust.dsc.model", "insarclust.dsc.train", "insarclust.layers"} <= dsc


@pytest.fixture
def tree(tmp_path):
    """A copy of scripts/ and src/insarclust to edit."""
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    shutil.copytree(PACKAGE, tmp_path / "insarclust", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _digest(tree: Path, script: str) -> str:
    return cd.code_digest(tree / "scripts" / f"{script}.py", tree / "insarclust")


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_digest_follows_code_not_docstrings_or_comments(tree):
    before = {s: _digest(tree, s) for s in ("graph", "smooth", "embed_part")}
    assert before == {s: cd.code_digest(ROOT / "scripts" / f"{s}.py", PACKAGE) for s in before}

    geodesy = tree / "insarclust/geodesy.py"
    source = geodesy.read_text()
    # a docstring reworded, a comment and blank lines added: no stage reruns
    first = source.index('"""') + 3
    geodesy.write_text(source[:first] + "Reworded. " + source[first:] + "\n\n# a comment\n")
    assert {s: _digest(tree, s) for s in before} == before

    # code changed in a module the graph imports (not its own module): the graph reruns,
    # the embedding, which does not import it, does not
    _append(geodesy, "_EDITED = 1\n")
    after = {s: _digest(tree, s) for s in before}
    assert after["graph"] != before["graph"]
    assert after["embed_part"] == before["embed_part"] and after["smooth"] == before["smooth"]

    # the script's own bytes count, comments included (as Snakemake's own check does)
    _append(tree / "scripts/embed_part.py", "# edited\n")
    assert _digest(tree, "embed_part") != before["embed_part"]


def test_every_rule_with_a_script_carries_the_digest_of_that_script():
    rules = 0
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule |checkpoint )", smk.read_text()):
            script = re.search(r'script:\s*\n\s*"\.\./\.\./scripts/(\w+)\.py"', block)
            if script:
                rules += 1
                assert f'code=code_digest("{script.group(1)}")' in block, (smk.name, block[:60])
    assert rules >= 20


def test_canonical_text_is_the_same_on_every_python_version():
    # ascii, not repr: repr's escapes follow the interpreter's Unicode database
    # ("\U0001fae8" is escaped by Python 3.11 only, "\u2ffc" by 3.11 and 3.12)
    for char in ("\xf8", "\u2ffc", "\U0001fae8"):
        text = cd.canonical(ast.parse(f"y = '{char}'"))
        assert text == ("Module(body=[Assign(targets=[Name(id='y',ctx=Store())],"
                        f"value=Constant(value={ascii(char)}))])")
    # Python 3.12 ends the format spec of f"{x:{w}}" with an empty string, 3.11 and 3.13 do not
    assert cd.canonical(ast.parse('y = f"{x:{w}}"')) == (
        "Module(body=[Assign(targets=[Name(id='y',ctx=Store())],value=JoinedStr(values=["
        "FormattedValue(value=Name(id='x',ctx=Load()),conversion=-1,format_spec=JoinedStr(values=["
        "FormattedValue(value=Name(id='w',ctx=Load()),conversion=-1)]))]))])")


def test_the_classes_a_script_builds_by_name_are_in_its_digest():
    """config.Stage imports its class by name (importlib), which the import walk does not
    follow: each script must import the class's module as well, directly or through others."""
    from insarclust.config import STAGES

    for script in sorted((ROOT / "scripts").glob("*.py")):
        modules = cd.script_modules(script, PACKAGE)
        files = [script] + [p for p in (cd.module_file(m, PACKAGE) for m in modules) if p]
        for path in files:
            for node in ast.walk(ast.parse(path.read_bytes())):
                builds = getattr(getattr(node, "func", None), "id", None) in ("build_stage", "stage_kwargs")
                if builds and node.args and isinstance(node.args[0], ast.Constant):
                    target = STAGES[node.args[0].value].target.split(":")[0]
                    assert target in modules, (script.name, path.name, target)


def test_digests_are_kept_while_no_source_changes(tree, monkeypatch):
    scripts = {s: tree / "scripts" / f"{s}.py" for s in ("graph", "embed_part")}
    cache = tree / ".snakemake" / "digests.json"
    first = cd.code_digests(scripts, tree / "insarclust", cache)
    assert first == {s: _digest(tree, s) for s in scripts} and cache.exists()

    def parse_forbidden(*_):
        raise AssertionError("parsed again")

    monkeypatch.setattr(cd, "code_digest", parse_forbidden)
    assert cd.code_digests(scripts, tree / "insarclust", cache) == first
    monkeypatch.undo()
    # any byte of any module (here one the scripts do not import) computes them again
    _append(tree / "insarclust/summary.py", "# note\n")
    monkeypatch.setattr(cd, "code_digest", parse_forbidden)
    with pytest.raises(AssertionError, match="parsed again"):
        cd.code_digests(scripts, tree / "insarclust", cache)
    monkeypatch.undo()
    _append(tree / "insarclust/geodesy.py", "_EDITED = 1\n")
    cache.write_text("{not json")
    second = cd.code_digests(scripts, tree / "insarclust", cache)
    assert second["graph"] != first["graph"] and second["embed_part"] == first["embed_part"]
    assert cd.code_digests(scripts, tree / "insarclust", cache) == second


def test_kept_digests_serve_a_checkout_elsewhere(tree, tmp_path, monkeypatch):
    """The planning (the workflow's own path) and a job (its script folder's) may spell the
    checkout differently: the cache is keyed by file names and bytes, not paths."""
    scripts = {s: tree / "scripts" / f"{s}.py" for s in ("graph", "smooth")}
    cache = tmp_path / "digests.json"
    first = cd.code_digests(scripts, tree / "insarclust", cache)
    other = tmp_path / "elsewhere"
    shutil.copytree(tree, other, ignore=shutil.ignore_patterns("*.json"))
    monkeypatch.setattr(cd, "code_digest", lambda *_: (_ for _ in ()).throw(AssertionError("parsed again")))
    moved = {s: other / "scripts" / f"{s}.py" for s in scripts}
    assert cd.code_digests(moved, other / "insarclust", cache) == first
