"""Conda environments (envs/*.yaml) against what the rules really import.

Conda channels are not reachable in CI, so ``--use-conda`` cannot be run;
this check is static. For every rule it reads the rule's ``conda:`` env and
its code (``script:``, ``python`` calls in ``shell:``, ``run:`` blocks),
follows imports from there into the workflow's own packages under ``src/``
(transitively; an import inside a function counts when the rule's code can
reach that function), and checks that every third-party module is provided
by that env. It also checks that each env pins the same versions as pyproject.toml.
Everything is derived from the files, so new scripts and modules are covered
without editing this test.
"""
from __future__ import annotations

import ast
import re
import sys
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

# Import name -> conda package names that provide it (any one suffices).
# Import names not listed are provided by the conda package of the same name
# (with '_' and '-' taken as equal).
IMPORT_TO_CONDA: dict[str, set[str]] = {
    "sklearn": {"scikit-learn"},
    "yaml": {"pyyaml"},
    "torch": {"pytorch", "pytorch-gpu", "pytorch-cpu"},
    "torch_geometric": {"pytorch_geometric", "pytorch-geometric", "torch-geometric"},
    "PIL": {"pillow"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
    "mpl_toolkits": {"matplotlib", "matplotlib-base"},
    "dateutil": {"python-dateutil"},
    "reservoir_computing": {"reservoir-computing"},
    # required dependencies of scikit-learn: installed with it, not pinned separately
    "threadpoolctl": {"threadpoolctl", "scikit-learn"},
    "joblib": {"joblib", "scikit-learn"},
}
# Snakemake puts its own package on sys.path of every script job, whatever the env.
ALWAYS_PROVIDED = {"snakemake"}

# Conda package name -> PyPI distribution name in pyproject.toml, where they differ.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-gpu": "torch",
    "pytorch-cpu": "torch",
    "pytorch_geometric": "torch-geometric",
    "pytorch-geometric": "torch-geometric",
    "matplotlib-base": "matplotlib",
}
# Env entries that are not Python distributions pinned in pyproject.toml.
NOT_IN_PYPROJECT = {"python", "pip"}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


# --------------------------------------------------------------------------- #
# environments and pyproject

@dataclass
class Env:
    path: Path
    packages: dict[str, str | None]  # normalised conda/pip name -> version (None: unpinned)
    raw: dict[str, str] = field(default_factory=dict)  # normalised name -> entry as written


_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(?:(==|=|>=|<=|~=|>|<|!=)\s*([^\s,;]+))?")


def read_env(path: Path) -> Env:
    """Parse a conda env file: ``name=version`` entries and a ``pip:`` list."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    entries: list[str] = []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict):
            entries += [str(d) for d in dep.get("pip") or []]
        else:
            entries.append(str(dep))
    env = Env(Path(path), {})
    for entry in entries:
        spec = entry.split("::")[-1].strip()  # drop a channel prefix (conda-forge::numpy)
        m = _SPEC.match(spec)
        if not m:
            continue
        name, op, version = m.groups()
        exact = op in ("=", "==") and version and not version.endswith("*")
        env.packages[_norm(name)] = version if exact else None
        env.raw[_norm(name)] = entry
    return env


def read_pyproject(path: Path) -> tuple[dict[str, str | None], SpecifierSet]:
    """PyPI pins of [project].dependencies (name -> version) and requires-python."""
    doc = tomllib.loads(Path(path).read_text())["project"]
    pins = {}
    for dep in doc.get("dependencies", []):
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==\s*([^\s,;]+))?", dep)
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins, SpecifierSet(doc.get("requires-python", ""))


def provides(env: Env, module: str) -> bool:
    if module in ALWAYS_PROVIDED:
        return True
    candidates = IMPORT_TO_CONDA.get(module, {module})
    return any(_norm(c) in env.packages for c in candidates)


def version_problems(env: Env, pyproject: Path) -> list[str]:
    pins, requires_python = read_pyproject(pyproject)
    problems = []
    for name, version in env.packages.items():
        where = f"{env.path.name}: '{env.raw[name]}'"
        if name == "python":
            if version is None or not requires_python.contains(version + ".0" * (2 - version.count(".")),
                                                               prereleases=True):
                problems.append(f"{where} does not satisfy requires-python '{requires_python}' "
                                "of pyproject.toml")
            continue
        if name in NOT_IN_PYPROJECT:
            continue
        pypi = canonicalize_name(CONDA_TO_PYPI.get(name, name))
        if version is None:
            problems.append(f"{where} is not pinned; pin it to the version in pyproject.toml")
        elif pypi not in pins:
            problems.append(f"{where}: pyproject.toml does not list {pypi}; add it there "
                            "(pyproject.toml is the reference for versions)")
        elif pins[pypi] is None:
            problems.append(f"{where}: pyproject.toml does not pin {pypi}")
        elif pins[pypi] != version:
            problems.append(f"{where} but pyproject.toml pins {pypi}=={pins[pypi]}")
    return problems


# --------------------------------------------------------------------------- #
# rules

@dataclass
class Rule:
    name: str
    file: Path  # the .smk/Snakefile defining it; conda:/script: paths are relative to it
    conda: str | None = None
    conda_unresolved: str | None = None  # conda: given as an expression we cannot follow
    scripts: list[Path] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)  # `python -m pkg.mod` in shell:
    run_code: str | None = None


_RULE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:")
_INCLUDE = re.compile(r"^include:\s*(.+?)\s*$")
_DIRECTIVE = re.compile(r"^(\s+)(\w+):\s*(.*)$")


def _literal(text: str):
    text = text.strip().rstrip(",").strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def _directives(block: list[str]) -> dict[str, str]:
    """Directive name -> its text (same-line remainder plus more-indented lines)."""
    out: dict[str, list[str]] = {}
    indent = None
    current = None
    for line in block:
        m = _DIRECTIVE.match(line)
        if m and (indent is None or len(m.group(1)) == indent):
            indent = len(m.group(1))
            current = m.group(2)
            out[current] = [m.group(3)] if m.group(3) else []
        elif current is not None and (not line.strip() or len(line) - len(line.lstrip()) > (indent or 0)):
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def parse_rules(snakefile: Path) -> list[Rule]:
    """Rules of a workflow, following ``include:`` statements from ``snakefile``."""
    rules: list[Rule] = []
    seen: set[Path] = set()

    def visit(path: Path):
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            inc = _INCLUDE.match(line)
            if inc:
                target = _literal(inc.group(1))
                if isinstance(target, str):
                    visit(path.parent / target)
            m = _RULE.match(line)
            if not m:
                i += 1
                continue
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i][0] in " \t"):
                block.append(lines[i])
                i += 1
            rules.append(_make_rule(m.group(1), path, _directives(block)))

    visit(Path(snakefile))
    return rules


def _make_rule(name: str, file: Path, d: dict[str, str]) -> Rule:
    rule = Rule(name, file)
    if "conda" in d:
        value = _literal(d["conda"])
        if isinstance(value, str):
            rule.conda = value
        else:
            rule.conda_unresolved = d["conda"].strip()
    for key in ("script", "notebook"):
        if key in d:
            value = _literal(d[key])
            if isinstance(value, str) and value.endswith(".py"):
                rule.scripts.append((file.parent / value).resolve())
    if "shell" in d:
        text = d["shell"]
        # shell paths are relative to the working directory (= the repository root)
        for script in re.findall(r"python[0-9.]*\s+(?:-\S+\s+)*([\w./\-{}]+\.py)", text):
            rule.scripts.append((ROOT / script).resolve() if not Path(script).is_absolute()
                                else Path(script))
        rule.modules += re.findall(r"python[0-9.]*\s+(?:-\S+\s+)*-m\s+([\w.]+)", text)
    if "run" in d:
        rule.run_code = textwrap.dedent(d["run"])
    return rule


# --------------------------------------------------------------------------- #
# imports
#
# Library modules import heavy packages inside the functions that need them
# (e.g. torch in save_model), so that a light rule can use the module's other
# functions in a light env. The walk therefore follows what rule code really
# references: a module's top-level imports always count (they run on import),
# an import inside a function counts when the function is reachable from the
# rule's script through references (calls, attribute access; a class counts
# whole). References made through values (getattr, callbacks looked up by
# string) are not seen; those imports must then sit at module level.

@dataclass(frozen=True)
class Import:
    module: str   # dotted name as written (absolute; relative ones resolved)
    names: tuple  # names of `from module import a, b` (empty for `import module`)
    optional: bool  # inside try/except ImportError
    asname: str | None = None  # `import module as asname` (single name)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    t = handler.type
    names = [n.id for n in (t.elts if isinstance(t, ast.Tuple) else [t]) if isinstance(n, ast.Name)]
    return any(n in ("ImportError", "ModuleNotFoundError") for n in names)


def _optional_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            for stmt in node.body:
                out |= {id(sub) for sub in ast.walk(stmt)}
    return out


def _import_records(nodes, package: str | None, optional: set[int]) -> list[Import]:
    out = []
    for node in nodes:
        opt = id(node) in optional
        if isinstance(node, ast.Import):
            out += [Import(a.name, (), opt, a.asname) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                if not package:
                    continue
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            out.append(Import(module, tuple(a.name for a in node.names), opt))
    return out


def _walk_skip_defs(node):
    """ast.walk that does not enter function or class bodies (module-level code)."""
    todo = [node]
    while todo:
        n = todo.pop()
        yield n
        for child in ast.iter_child_nodes(n):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                todo.append(child)


def imports_of(code: str, package: str | None = None) -> list[Import]:
    """All imports in ``code``, top level and inside functions.

    ``package`` is the dotted package of the module, to resolve relative imports.
    """
    tree = ast.parse(code)
    return _import_records(ast.walk(tree), package, _optional_nodes(tree))


def _references(node) -> set[tuple[str, ...]]:
    """Dotted names used in ``node`` (``a.b.c`` -> ('a', 'b', 'c')), annotations excluded."""
    refs: set[tuple[str, ...]] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.Attribute, ast.Name)):
            chain, cur = [], n
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                refs.add(tuple([cur.id] + chain[::-1]))
                continue
            todo.append(cur)
            continue
        for field_name, value in ast.iter_fields(n):
            if field_name in ("annotation", "returns"):
                continue
            for child in (value if isinstance(value, list) else [value]):
                if isinstance(child, ast.AST):
                    todo.append(child)
    return refs


@dataclass
class Module:
    dotted: str
    label: str  # path shown in messages
    tree: ast.Module
    package: str | None
    optional: set[int]
    defs: dict[str, ast.AST] = field(default_factory=dict)


class ImportWalker:
    """Follows rule code into local packages; collects the third-party modules it needs."""

    def __init__(self, src: Path):
        self.src = Path(src)
        self.local = {p.name for p in self.src.iterdir()
                      if p.is_dir() and (p / "__init__.py").exists()} if self.src.exists() else set()
        self._modules: dict[str, Module] = {}

    def module_file(self, dotted: str) -> Path | None:
        base = self.src.joinpath(*dotted.split("."))
        if (base / "__init__.py").exists():
            return base / "__init__.py"
        if base.with_suffix(".py").exists():
            return base.with_suffix(".py")
        return None

    def _make(self, dotted, label, code, package) -> Module:
        tree = ast.parse(code)
        mod = Module(dotted, label, tree, package, _optional_nodes(tree))
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                mod.defs[stmt.name] = stmt
        return mod

    def module(self, dotted: str) -> Module | None:
        if dotted not in self._modules:
            f = self.module_file(dotted)
            if f is None:
                return None
            package = dotted if f.name == "__init__.py" else dotted.rpartition(".")[0]
            label = str(f.relative_to(self.src.parent)) if f.is_relative_to(self.src.parent) else str(f)
            self._modules[dotted] = self._make(dotted, label, f.read_text(), package)
        return self._modules[dotted]

    def _is_local(self, dotted: str) -> bool:
        return dotted.split(".")[0] in self.local

    def third_party(self, code: str, origin: str, package: str | None = None):
        """{top-level module: chain of files that leads to it} needed to run ``code``."""
        found: dict[str, list[str]] = {}
        done: set[tuple] = set()
        aliases: dict[str, dict[str, tuple]] = {}  # module -> name -> ("mod", d) | ("sym", d, n)
        queue: list[tuple] = []

        def use_imports(mod: Module, imports: list[Import], chain, scope: dict):
            """Record imports run by ``mod``; bind their names in ``scope``."""
            for imp in imports:
                top = imp.module.split(".")[0]
                if not top or top == "__future__" or top in sys.stdlib_module_names:
                    continue
                if not self._is_local(imp.module):
                    if not imp.optional:
                        found.setdefault(top, chain)
                    continue
                parts = imp.module.split(".")
                for i in range(1, len(parts) + 1):  # package __init__s run on the way
                    queue.append(("module", ".".join(parts[:i]), chain))
                if not imp.names:
                    scope[imp.asname or top] = ("mod", imp.module if imp.asname else top)
                for name in imp.names:
                    if name == "*":
                        queue.append(("star", imp.module, chain))
                    elif self.module_file(f"{imp.module}.{name}"):
                        queue.append(("module", f"{imp.module}.{name}", chain))
                        scope[name] = ("mod", f"{imp.module}.{name}")
                    else:
                        scope[name] = ("sym", imp.module, name)

        def resolve(mod: Module, ref: tuple[str, ...], chain, scope: dict):
            """Queue the definition a dotted reference made in ``mod`` points to."""
            current, names = mod, list(ref)
            while names and current is not None:
                name = names.pop(0)
                table = scope if current is mod else aliases.get(current.dotted, {})
                if name in current.defs:
                    queue.append(("symbol", current.dotted, name, chain))
                    return
                target = table.get(name)
                if target is None and self.module_file(f"{current.dotted}.{name}"):
                    target = ("mod", f"{current.dotted}.{name}")
                if target is None:
                    return
                if target[0] == "mod":
                    current = self.module(target[1])
                else:
                    queue.append(("symbol", target[1], target[2], chain))
                    return

        def visit_module(mod: Module, chain):
            chain = chain + [mod.label]
            scope = aliases.setdefault(mod.dotted, {})
            use_imports(mod, _import_records(_walk_skip_defs(mod.tree), mod.package, mod.optional),
                        chain, scope)
            # module-level code (not function/class bodies) runs on import
            for stmt in mod.tree.body:
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                         ast.Import, ast.ImportFrom)):
                    for ref in _references(stmt):
                        resolve(mod, ref, chain, scope)
            return chain

        def visit_symbol(mod: Module, name: str, chain):
            node = mod.defs.get(name)
            scope = aliases.setdefault(mod.dotted, {})
            if node is None:  # a re-export, e.g. `from .x import f` in __init__
                target = scope.get(name)
                if target and target[0] == "sym":
                    queue.append(("symbol", target[1], target[2], chain))
                return
            local_scope = dict(scope)
            use_imports(mod, _import_records(ast.walk(node), mod.package, mod.optional),
                        chain, local_scope)
            for bound, target in local_scope.items():  # names imported inside the function
                if scope.get(bound) != target and target[0] == "sym":
                    queue.append(("symbol", target[1], target[2], chain))
            for ref in _references(node):
                resolve(mod, ref, chain, local_scope)

        entry = self._make("__main__", origin, code, package)
        chain0 = visit_module(entry, [])
        for name in entry.defs:  # everything the rule's own code defines may run
            visit_symbol(entry, name, chain0)
        while queue:
            item = queue.pop()
            key = item[:3] if item[0] == "symbol" else item[:2]
            if key in done:
                continue
            done.add(key)
            mod = self.module(item[1])
            if mod is None:
                continue
            if item[0] == "module":
                visit_module(mod, item[2])
            elif item[0] == "star":
                chain = visit_module(mod, item[2])
                for name in mod.defs:
                    queue.append(("symbol", mod.dotted, name, chain))
            else:
                if ("module", mod.dotted) not in done:
                    queue.append(item)
                    queue.append(("module", mod.dotted, item[3]))
                    done.discard(key)
                    continue
                visit_symbol(mod, item[2], item[3] + [f"{mod.label}:{item[2]}"])
        return found


def check_workflow(root: Path, snakefile: str = "Snakefile") -> list[str]:
    """Problems (empty list = consistent) of the workflow in ``root``."""
    root = Path(root)
    walker = ImportWalker(root / "src")
    problems = []
    envs: dict[Path, Env] = {}
    for rule in parse_rules(root / snakefile):
        has_code = rule.scripts or rule.modules or rule.run_code
        if rule.conda_unresolved:
            problems.append(f"rule {rule.name}: conda: {rule.conda_unresolved!r} is not a plain "
                            "path; the check cannot follow it")
            continue
        if not rule.conda:
            if has_code:
                problems.append(f"rule {rule.name} ({rule.file.name}) runs code but has no conda: "
                                "directive; add one naming an envs/*.yaml")
            continue
        env_path = (rule.file.parent / rule.conda).resolve()
        if not env_path.exists():
            problems.append(f"rule {rule.name}: conda env {rule.conda} not found ({env_path})")
            continue
        env = envs.setdefault(env_path, read_env(env_path))
        needed: dict[str, list[str]] = {}
        for script in rule.scripts:
            if not script.exists():
                problems.append(f"rule {rule.name}: script {script} not found")
                continue
            rel = script.relative_to(root) if script.is_relative_to(root) else script
            for mod, chain in walker.third_party(script.read_text(), str(rel)).items():
                needed.setdefault(mod, chain)
        for dotted in rule.modules:
            for mod, chain in walker.third_party(f"import {dotted}", f"python -m {dotted}").items():
                needed.setdefault(mod, chain)
        if rule.run_code:
            for mod, chain in walker.third_party(rule.run_code, f"run: of rule {rule.name}").items():
                needed.setdefault(mod, chain)
        for mod, chain in sorted(needed.items()):
            if not provides(env, mod):
                wanted = ", ".join(sorted(IMPORT_TO_CONDA.get(mod, {mod})))
                problems.append(
                    f"rule {rule.name}: imports '{mod}' (via {' -> '.join(chain)}) but "
                    f"{env_path.relative_to(root) if env_path.is_relative_to(root) else env_path} "
                    f"provides none of: {wanted}")
    pyproject = root / "pyproject.toml"
    env_files = set(envs) | set((root / "envs").glob("*.yaml"))
    for env_path in sorted(env_files):
        env = envs.get(env_path) or read_env(env_path)
        if pyproject.exists():
            problems += version_problems(env, pyproject)
    return problems


# --------------------------------------------------------------------------- #
# tests on the repository

def test_every_rule_env_provides_its_imports_and_matches_pyproject():
    problems = check_workflow(ROOT)
    assert problems == [], "environment problems:\n  " + "\n  ".join(problems)


def test_every_rule_that_runs_code_names_an_env():
    rules = parse_rules(ROOT / "Snakefile")
    with_code = [r for r in rules if r.scripts or r.modules or r.run_code]
    # the workflow has a rule per stage; all of them run a script
    assert len(with_code) >= 10
    assert all(r.conda for r in with_code), [r.name for r in with_code if not r.conda]
    assert {Path(r.conda).name for r in with_code} <= {p.name for p in (ROOT / "envs").glob("*.yaml")}


def test_torch_rules_use_a_torch_env():
    """A known answer on the real tree: embed/dsc import torch through the library."""
    walker = ImportWalker(ROOT / "src")
    rules = {r.name: r for r in parse_rules(ROOT / "Snakefile")}
    for name in ("embed_fit", "dsc"):
        rule = rules[name]
        needed = set()
        for script in rule.scripts:
            needed |= set(walker.third_party(script.read_text(), script.name))
        if "torch" not in needed:
            pytest.skip(f"scripts/{name}.py does not import torch (yet)")
        env = read_env((rule.file.parent / rule.conda).resolve())
        assert provides(env, "torch")


# --------------------------------------------------------------------------- #
# the check itself, on fixture workflows

PYPROJECT = """\
[project]
name = "fixture"
version = "0"
requires-python = ">=3.11"
dependencies = ["numpy==2.4.6", "h5py==3.16.0", "torch==2.13.0", "pyyaml==6.0.3"]
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def fixture_workflow(tmp_path):
    """A consistent workflow: io env for numpy/h5py code, torch env for torch code."""
    _write(tmp_path / "pyproject.toml", PYPROJECT)
    _write(tmp_path / "Snakefile", """\
        include: "workflow/rules/stages.smk"

        rule all:
            input: "b.txt", "c.txt"
        """)
    _write(tmp_path / "workflow/rules/stages.smk", """\
        rule a:
            output:
                "a.txt",
            conda:
                "../../envs/io.yaml"
            script:
                "../../scripts/a.py"


        rule b:
            input: "a.txt"
            output: "b.txt"
            conda: "../../envs/torch.yaml"
            script: "../../scripts/b.py"


        rule c:
            output: "c.txt"
            conda:
                "../../envs/io.yaml"
            shell:
                "python -m mypkg.cli {output}"
        """)
    _write(tmp_path / "envs/io.yaml", """\
        channels: [conda-forge]
        dependencies:
          - python=3.11
          - numpy=2.4.6
          - h5py=3.16.0
          - pyyaml=6.0.3
        """)
    _write(tmp_path / "envs/torch.yaml", """\
        channels: [conda-forge]
        dependencies:
          - python=3.11
          - numpy=2.4.6
          - pytorch=2.13.0
        """)
    _write(tmp_path / "scripts/a.py", """\
        import json
        from mypkg import store
        store.save(snakemake.output[0])
        """)
    _write(tmp_path / "scripts/b.py", """\
        from mypkg.model import train
        train()
        """)
    _write(tmp_path / "src/mypkg/__init__.py", "")
    _write(tmp_path / "src/mypkg/store.py", """\
        import h5py
        import numpy as np
        from . import config
        try:
            import psutil  # optional: memory in the logs
        except ImportError:
            psutil = None
        """)
    _write(tmp_path / "src/mypkg/config.py", "import yaml\n")
    _write(tmp_path / "src/mypkg/model.py", """\
        import numpy as np


        def train():
            import torch  # heavy: only when training
            return torch.zeros(1)
        """)
    _write(tmp_path / "src/mypkg/cli.py", "from .store import *\n")
    return tmp_path


def test_fixture_workflow_is_consistent(fixture_workflow):
    assert check_workflow(fixture_workflow) == []


def test_check_fails_when_a_rule_imports_a_module_its_env_lacks(fixture_workflow):
    # the io rule's library module now needs torch (lazily, inside a function)
    _write(fixture_workflow / "src/mypkg/store.py", """\
        import h5py
        import numpy as np


        def save(path):
            from .model import train
            train()
        """)
    problems = check_workflow(fixture_workflow)
    torch_problems = [p for p in problems if "'torch'" in p]
    # rule a (script) and rule c (python -m) both reach torch through mypkg.store
    assert {p.split(":")[0] for p in torch_problems} == {"rule a", "rule c"}
    a = next(p for p in torch_problems if p.startswith("rule a"))
    assert "scripts/a.py -> src/mypkg/store.py:save -> src/mypkg/model.py:train" in a
    assert "envs/io.yaml" in a and "pytorch" in a
    assert len(problems) == 2


def test_check_fails_on_a_third_party_import_in_a_script(fixture_workflow):
    _write(fixture_workflow / "scripts/b.py", "import sklearn\nfrom mypkg.model import train\n")
    problems = check_workflow(fixture_workflow)
    assert len(problems) == 1
    assert problems[0].startswith("rule b: imports 'sklearn'")
    assert "scikit-learn" in problems[0]


def test_check_fails_on_version_drift_and_unpinned_entries(fixture_workflow):
    _write(fixture_workflow / "envs/torch.yaml", """\
        dependencies:
          - python=3.10
          - numpy=1.26.4
          - pytorch
          - pip:
            - h5py==3.16.0
            - zarr==3.0.0
        """)
    problems = check_workflow(fixture_workflow)
    text = "\n".join(problems)
    assert "torch.yaml: 'numpy=1.26.4' but pyproject.toml pins numpy==2.4.6" in text
    assert "torch.yaml: 'pytorch' is not pinned" in text
    assert "torch.yaml: 'python=3.10' does not satisfy requires-python" in text
    assert "pyproject.toml does not list zarr" in text
    assert len(problems) == 4  # h5py from pip matches


def test_check_fails_on_a_rule_without_env(fixture_workflow):
    smk = fixture_workflow / "workflow/rules/stages.smk"
    smk.write_text(smk.read_text().replace('    conda: "../../envs/torch.yaml"\n', ""))
    problems = check_workflow(fixture_workflow)
    assert problems == ["rule b (stages.smk) runs code but has no conda: directive; "
                        "add one naming an envs/*.yaml"]


def test_imports_of_resolves_relative_and_optional_imports():
    code = textwrap.dedent("""\
        from . import h5io
        from ..core.io import read
        import numpy as np
        try:
            import torch
        except (ImportError, OSError):
            torch = None
        """)
    imps = imports_of(code, package="pkg.sub")
    assert Import("pkg.sub", ("h5io",), False) in imps
    assert Import("pkg.core.io", ("read",), False) in imps
    assert Import("numpy", (), False, "np") in imps
    assert Import("torch", (), True) in imps


def test_lazy_import_counts_only_when_its_function_is_reachable(fixture_workflow):
    # a heavy import inside a function rules a and c never call: io.yaml is still enough
    # (a star import would count every function of the module)
    _write(fixture_workflow / "src/mypkg/cli.py", "import sys\nfrom .store import save\nsave(sys.argv[1])\n")
    store = fixture_workflow / "src/mypkg/store.py"
    store.write_text(store.read_text() + textwrap.dedent("""\


        def plot(path):
            import matplotlib.pyplot as plt
            plt.savefig(path)


        def save(path):
            return path
        """))
    assert check_workflow(fixture_workflow) == []
    # ... and it counts once the script reaches it through another function
    store.write_text(store.read_text().replace("    return path\n", "    return plot(path)\n"))
    problems = check_workflow(fixture_workflow)
    assert [p.split(":")[0] for p in problems] == ["rule a", "rule c"]
    assert all("imports 'matplotlib'" in p for p in problems)
    assert "src/mypkg/store.py:save -> src/mypkg/store.py:plot" in problems[0]


def test_reexported_names_and_classes_are_followed(fixture_workflow):
    # `from mypkg import Trainer` where __init__ re-exports a class whose method imports torch
    _write(fixture_workflow / "src/mypkg/__init__.py", "from .trainer import Trainer\n")
    _write(fixture_workflow / "src/mypkg/trainer.py", """\
        class Trainer:
            def fit(self):
                import torch
                return torch.zeros(1)
        """)
    _write(fixture_workflow / "scripts/a.py", "from mypkg import Trainer\nTrainer().fit()\n")
    problems = check_workflow(fixture_workflow)
    assert len(problems) == 1 and problems[0].startswith("rule a: imports 'torch'")
    # importing the package without using the class needs no torch
    _write(fixture_workflow / "scripts/a.py", "from mypkg import store\n")
    assert check_workflow(fixture_workflow) == []
