"""Digest of the code a workflow script runs: its own bytes and the insarclust modules it
imports, directly or through other modules.

Snakemake follows a rule's script, not the library the script imports, so an upgrade of
insarclust reran nothing by itself and a new site could be clustered by newer code than
the sites beside it in the summary. As a rule param the digest reruns exactly the stages
whose code changed. A module counts by its syntax tree without docstrings, so edits of
docstrings, comments and layout rerun nothing; the tree is written out by
:func:`canonical`, not :func:`ast.dump`, whose text differs between Python versions.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from pathlib import Path

PACKAGE = "insarclust"
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(statement: ast.stmt) -> bool:
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))


def canonical(node) -> str:
    """Text of a syntax tree without positions and docstrings; fields that are empty or
    None are left out (fields added by later Python versions, such as ``type_params``, are
    empty for code that does not use them). Values are written with :func:`ascii`, not
    :func:`repr`, whose escapes follow the interpreter's Unicode database (a character
    assigned in Unicode 15.1 is escaped by Python 3.11 and 3.12, not by 3.13); an empty
    string in an f-string (Python 3.12 puts one after ``{w}`` in ``f"{x:{w}}"``, 3.11 and
    3.13 do not) is left out."""
    if isinstance(node, list):
        return "[" + ",".join(map(canonical, node)) + "]"
    if not isinstance(node, ast.AST):
        return ascii(node)
    if isinstance(node, ast.JoinedStr):
        node = ast.JoinedStr(values=[v for v in node.values
                                     if not (isinstance(v, ast.Constant) and v.value == "")])
    fields = []
    for name in node._fields:
        value = getattr(node, name, None)
        if (name == "body" and isinstance(node, _DOCUMENTED) and value
                and _is_docstring(value[0])):
            value = value[1:]
        if value is None or (isinstance(value, list) and not value):
            continue
        fields.append(f"{name}={canonical(value)}")
    return f"{type(node).__name__}({','.join(fields)})"


# cached by content, not by path: a file edited in the same process is read again
@functools.lru_cache(maxsize=None)
def _tree(source: bytes) -> ast.AST:
    return ast.parse(source)


@functools.lru_cache(maxsize=None)
def _code(source: bytes) -> str:
    return canonical(_tree(source))


def module_code(path: Path) -> str:
    """:func:`canonical` text of a module."""
    return _code(Path(path).read_bytes())


def module_file(name: str, package_dir: Path) -> Path | None:
    """The file of module ``insarclust.a.b`` under ``package_dir`` (the ``insarclust``
    folder), or None when ``name`` is not a module (a function imported from a package)."""
    path = package_dir.joinpath(*name.split(".")[1:])
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


@functools.lru_cache(maxsize=None)
def _imported(source: bytes, module: str, is_package: bool, package_dir: Path) -> frozenset[str]:
    """insarclust modules named by the imports of ``source`` (anywhere in it, also inside
    functions), with the packages above each (importing a module runs them)."""
    tree = _tree(source)
    here = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            # from insarclust import graph: a module, not a name of the package
            names.update(f"{base}.{a.name}" for a in node.names
                         if module_file(f"{base}.{a.name}", package_dir))
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == PACKAGE:
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(found)


def script_modules(script: Path, package_dir: Path) -> list[str]:
    """Every insarclust module ``script`` imports, directly or through other modules."""
    seen: set[str] = set()
    todo = list(_imported(Path(script).read_bytes(), "__main__", False, package_dir))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, package_dir)
        if path is not None:
            todo.extend(_imported(path.read_bytes(), name, path.name == "__init__.py", package_dir))
    return sorted(seen)


def code_digest(script: Path, package_dir: Path) -> str:
    """sha256 of ``script``'s bytes and of the code of every module in
    :func:`script_modules` (module names included, so a moved function counts)."""
    digest = hashlib.sha256(Path(script).read_bytes())
    for name in script_modules(script, package_dir):
        path = module_file(name, package_dir)
        if path is not None:
            digest.update(f"\0{name}\0".encode())
            digest.update(module_code(path).encode())
    return digest.hexdigest()


def _sources_signature(files: dict) -> str:
    """sha256 over the names and bytes of ``files`` (name -> path): equal only for the very same
    files, wherever the checkout lies."""
    h = hashlib.sha256()
    for name, path in files.items():
        h.update(f"\0{name}\0".encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def code_digests(scripts: dict, package_dir: Path, cache_path: Path | None = None) -> dict:
    """:func:`code_digest` of every script of ``scripts`` (name -> path), reused from
    ``cache_path`` while no script and no module of the package has changed a byte (parsing
    the package takes ~0.5 s, which every planning and every cluster job's start would pay;
    reading the files to compare ~5 ms). The cache is best effort: unreadable, unwritable or
    stale, the digests are computed."""
    package = {f"package/{p.relative_to(package_dir).as_posix()}": p
               for p in sorted(Path(package_dir).rglob("*.py"))}
    signature = _sources_signature({**{f"script/{k}": v for k, v in sorted(scripts.items())}, **package})
    if cache_path is not None:
        try:
            cached = json.loads(Path(cache_path).read_text())
            if cached.get("signature") == signature:   # it covers the scripts' names too
                return {name: cached["digests"][name] for name in scripts}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    digests = {name: code_digest(Path(path), Path(package_dir)) for name, path in scripts.items()}
    if cache_path is not None:
        try:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(f"{cache_path}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"signature": signature, "digests": digests}))
            os.replace(tmp, cache_path)   # atomic: concurrent jobs read one whole file or none
        except OSError:
            pass
    return digests
