"""Configuration helpers shared by the workflow and the library.

``snakemake --config 'kmeans={"k": 6}'`` hands nested values over as strings
(Snakemake parses them with YAML's BaseLoader), so the schema would reject
``"6"`` for an integer. :func:`coerce_to_schema` turns such strings into the
type the schema asks for, before validation, wherever the plain string is not
valid there itself.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping



def _valid(value: Any, schema: Mapping, defs: Mapping) -> bool:
    from jsonschema import Draft202012Validator   # only the workflow's start needs it, not the rules

    return Draft202012Validator({**schema, "$defs": defs}).is_valid(value)


def _resolve(schema: Mapping, defs: Mapping) -> Mapping:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**defs[ref.split("/")[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _types(schema: Mapping) -> set:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def _right_type(value: Any, schema: Mapping, defs: Mapping) -> bool:
    """Whether ``value`` has the schema's declared type (ranges and enums aside)."""
    return "type" in schema and _valid(value, {"type": schema["type"]}, defs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coerce(value: Any, schema: Mapping, defs: Mapping) -> Any:
    import datetime

    schema = _resolve(schema or {}, defs)
    # start: 2018-06-01 unquoted: YAML reads a date; the text asked for is the one written
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime) \
            and "string" in _types(schema):
        return value.isoformat()
    # 42.0 or 1e3 where an integer is asked: the schema calls them integers, Python code does not
    if isinstance(value, float) and value.is_integer() and "integer" in _types(schema):
        return int(value)
    # 10 and 10.0 are one setting: a "number" takes the type of its default (float without one),
    # since rule params compare by repr and "10" != "10.0" would rerun the stage and all after it
    if _is_number(value) and "number" in _types(schema) and "integer" not in _types(schema):
        default = schema.get("default")
        if _is_number(default) and isinstance(default, int):
            return int(value) if float(value).is_integer() else value
        return float(value)
    # "null" on the command line, where a string is valid too: None, as in config.yaml
    if isinstance(value, str) and value.strip() in ("null", "~") and "null" in _types(schema):
        return None
    for key in ("oneOf", "anyOf"):
        for option in schema.get(key, ()):
            candidate = _coerce(value, option, defs)
            if _valid(candidate, option, defs):
                return candidate
    if isinstance(value, str):
        if _valid(value, schema, defs):
            return value
        import yaml

        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        # "6" -> 6, "false" -> False, "null" -> None, "[2, 8]" -> [2, 8]
        if isinstance(parsed, str):
            # YAML 1.1 reads 1e5 (no dot, no sign) as text; Python does not
            for number in (int, float):
                try:
                    # 2e4 where an integer is asked becomes 20000, not 20000.0 (a float count
                    # stops a job: numpy refuses it as a size or a seed)
                    candidate = _coerce(number(value), schema, defs)
                except ValueError:
                    continue
                if _valid(candidate, schema, defs) or _right_type(candidate, schema, defs):
                    return candidate
            return value
        parsed = _coerce(parsed, schema, defs)
        # of the right type but out of range ("0" for a positive integer): keep the number, so the
        # schema's message names the range, not the type
        return parsed if _valid(parsed, schema, defs) or _right_type(parsed, schema, defs) else value
    if isinstance(value, Mapping):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {key: _coerce(item, props[key] if key in props else extra, defs)
                if (key in props or isinstance(extra, Mapping)) else item
                for key, item in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_coerce(item, schema["items"], defs) for item in value]
    return value


def coerce_to_schema(config: Mapping, schema: Mapping) -> dict:
    """A copy of ``config`` with strings turned into the schema's types where that makes them valid."""
    return _coerce(dict(config), schema, schema.get("$defs", {}))


def first_violation(instance: Any, schema: Mapping):
    """The first jsonschema ``ValidationError`` of ``instance`` in key order, or None."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return errors[0] if errors else None


def first_schema_error(instance: Any, schema: Mapping) -> tuple[list, str] | None:
    """``(path, message)`` of the first schema violation (path of keys/indices), or None."""
    err = first_violation(instance, schema)
    return None if err is None else ([str(p) for p in err.absolute_path], err.message)


CONFIG_SOURCES = "config/config.yaml, --configfile or --config"


def check_config(config: Mapping, schema: Mapping, sources: str = CONFIG_SOURCES) -> None:
    """Raise :class:`insarclust.errors.InputError` for the first key of ``config`` the schema refuses.

    A short message naming the key (a misspelt one with the closest known key), instead of
    the schema dump Snakemake's ``validate`` prints (several hundred lines for a misspelt
    top-level key, with the key's name at the top).
    """
    import difflib

    from .errors import InputError

    err = first_violation(config, schema)
    if err is None:
        return
    path = [str(p) for p in err.absolute_path]
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        defs = schema.get("$defs", {})
        node = _resolve(schema, defs)
        for key in path:
            node = _resolve(node.get("properties", {}).get(key, {}), defs)
        allowed = list(node.get("properties", {}))
        unknown = [k for k in err.instance if k not in allowed] or [None]
        key = str(unknown[0])
        close = difflib.get_close_matches(key, allowed, n=1)
        known = f"the keys there are {', '.join(allowed)}"
        raise InputError(f"configuration ({sources}), key '{'.'.join(path + [key])}': no such setting",
                         fix=(f"did you mean '{'.'.join(path + close)}'? " if close else "") + known)
    message = err.message
    if err.validator in ("oneOf", "anyOf"):
        # "is not valid under any of the given schemas" names none of them
        options = [describe(option, schema.get("$defs", {})) for option in err.validator_value]
        message = f"{err.instance!r} is none of: {'; '.join(options)}"
    fix = "see the comments of config/config.yaml (workflow/schemas/config.schema.yaml has every type and range)"
    if isinstance(err.instance, bool) and err.validator == "type":
        fix = (f"YAML reads yes/no, on/off and true/false as booleans: quote the value if you mean the word "
               f"(e.g. \"off\"); {fix}")
    raise InputError(f"configuration ({sources}), key '{'.'.join(path) or '(top level)'}': {message}", fix=fix)


_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a text", "boolean": "true or false",
               "array": "a list", "object": "a mapping (key: value)", "null": "null"}


def describe(schema: Mapping, defs: Mapping | None = None) -> str:
    """A schema in words: ``an integer >= 2``, ``'auto'``, ``null``."""
    schema = _resolve(schema, defs or {})
    if "const" in schema:
        return repr(schema["const"]) if schema["const"] is not None else "null"
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if isinstance(schema.get("additionalProperties"), Mapping) and _types(schema) == {"object"}:
        return "a mapping {name: " + describe(schema["additionalProperties"], defs) + "}"
    words = " or ".join(_TYPE_WORDS.get(t, str(t)) for t in sorted(_types(schema), key=str)) or "a value"
    bounds = [f"{op} {schema[key]}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                   ("maximum", "<="), ("exclusiveMaximum", "<"))
              if key in schema]
    return words + (" " + " and ".join(bounds) if bounds else "")


def repeated_key(text: str):
    """``(key path, first line, second line)`` of the first key given twice in one mapping of the
    YAML ``text``, or None. YAML loaders keep the last value without a word, so a setting added
    at the end of a section (or a copied format block left under its old name) would silently
    replace the one written above it."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None   # not YAML (the loader reports it) or JSON that YAML cannot read

    seen_nodes = set()

    def walk(node, path):
        if id(node) in seen_nodes:
            return None
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = key_node.value
                    line = key_node.start_mark.line + 1
                    if key in lines:
                        return ".".join(path + [key]), lines[key], line
                    lines[key] = line
                    hit = walk(value_node, path + [key])
                else:
                    hit = walk(value_node, path)
                if hit:
                    return hit
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                hit = walk(item, path[:-1] + [f"{path[-1]}[{i}]"] if path else [f"[{i}]"])
                if hit:
                    return hit
        return None

    return walk(root, []) if root is not None else None


def check_unique_keys(path, top: str = "key") -> None:
    """Raise :class:`insarclust.errors.InputError` when the YAML file ``path`` sets one key twice;
    ``top`` names what its top-level keys are (a ``format`` of formats.yaml)."""
    from pathlib import Path

    from .errors import InputError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return   # unreadable: whoever loads it reports that
    hit = repeated_key(text)
    if hit is not None:
        key, first, second = hit
        what = top if "." not in key and "[" not in key else "key"
        raise InputError(f"{what} '{key}' is given twice (lines {first} and {second}); YAML would keep only "
                         f"the value of line {second} without a word", file=str(path),
                         fix=f"keep one of them (edit line {first} and remove line {second}, or the other way round)")


# --------------------------------------------------------------------------- #
# defaults: the schema's ``default`` of every key


def schema_defaults(schema: Mapping) -> dict:
    """The configuration made of the schema's defaults alone (nested sections included)."""
    defs = schema.get("$defs", {})

    def walk(node):
        node = _resolve(node, defs)
        if "properties" in node:
            out = {}
            for key, sub in node["properties"].items():
                value = walk(sub)
                if value is not _NO_DEFAULT:
                    out[key] = value
            return out
        return node.get("default", _NO_DEFAULT)

    return walk(schema)


_NO_DEFAULT = object()


def with_defaults(config: Mapping, schema: Mapping) -> dict:
    """``config`` over the schema's defaults: a user's config may omit any key."""
    def merge(base, over):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base[key], value) if isinstance(value, Mapping) and isinstance(
                base.get(key), Mapping) and key in base else value
        return out

    return merge(schema_defaults(schema), config)


# --------------------------------------------------------------------------- #
# one builder: a config section -> a library object, from the object's own parameters


def param_names(cls) -> list[str]:
    """Keyword parameters of ``cls`` (scikit-learn estimators, dataclasses, plain classes)."""
    import inspect

    sig = inspect.signature(cls.__init__ if not dataclasses.is_dataclass(cls) else cls)
    return [p.name for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


# Config keys that group settings of one method (``shards.ransac.n_trials``); a
# mapping anywhere else is a value (``embed.static_weight: {height: 0.5}``).
GROUPS = frozenset({"ransac"})


def flatten(section: Mapping) -> dict:
    """``{"ransac": {"n_trials": 50}}`` -> ``{"ransac_n_trials": 50}`` (the groups of :data:`GROUPS`)."""
    out = {}
    for key, value in section.items():
        if key in GROUPS and isinstance(value, Mapping):
            out.update({f"{key}_{sub}": v for sub, v in value.items()})
        else:
            out[key] = value
    return out


def kwargs_for(cls, section: Mapping, *, renames: Mapping | None = None, ignore=()) -> dict:
    """Keyword arguments of ``cls`` from a config section; a key that is neither a parameter
    nor in ``ignore`` is an error (a typo in a dict passed from Python)."""
    renames = dict(renames or {})
    names = set(param_names(cls))
    out = {}
    for key, value in flatten(section).items():
        if key in ignore:
            continue
        name = renames.get(key, key)
        if name not in names:
            raise ValueError(f"{cls.__name__}: unknown setting {key!r}; known: "
                             f"{sorted({next((k for k, v in renames.items() if v == n), n) for n in names})}")
        out[name] = value
    return out


def build(cls, section: Mapping, *, renames: Mapping | None = None, ignore=(), **fixed):
    """An instance of ``cls`` from a config section (:func:`kwargs_for`) plus ``fixed`` arguments."""
    return cls(**{**kwargs_for(cls, section, renames=renames, ignore=ignore), **fixed})


# --------------------------------------------------------------------------- #
# which keys can change a result: the params of the fitting rules


@dataclasses.dataclass(frozen=True)
class Stage:
    """How a config section maps onto its library object.

    ``target``: ``module:Class`` of the object (imported on demand: the
    workflow must not import torch to plan a run); ``renames``: config key ->
    parameter; ``stage_keys``: keys the stage function reads besides the
    object's parameters; ``elsewhere``: keys of the section read by other
    rules; ``runtime``: parameters that cannot change a result (memory,
    parallelism, which matrix kernel) and so are never rule params.
    """

    target: str
    renames: Mapping = dataclasses.field(default_factory=dict)
    stage_keys: frozenset = frozenset()
    elsewhere: frozenset = frozenset()
    runtime: frozenset = frozenset()

    def cls(self):
        import importlib

        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)

    def param_names(self) -> list[str]:
        """:func:`param_names` of the target, read from its source when it says them (so
        that planning a run imports neither the module nor torch), else from the class."""
        return list(_param_names_in_source(self.target) or param_names(self.cls()))


@functools.lru_cache(maxsize=None)
def _param_names_in_source(target: str) -> tuple[str, ...] | None:
    """Keyword parameters of ``insarclust.<module>:Class`` parsed from its source file: the
    fields of a ``@dataclass``, else the arguments of the class's own ``__init__``; None when
    the class has neither (an inherited ``__init__``)."""
    import ast
    from pathlib import Path

    module, name = target.split(":")
    path = Path(__file__).resolve().parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text())
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if node is None:
        return None
    decorators = {ast.unparse(d).split("(")[0] for d in node.decorator_list}
    if decorators & {"dataclass", "dataclasses.dataclass"}:
        return tuple(n.target.id for n in node.body
                     if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
                     and "ClassVar" not in ast.unparse(n.annotation))
    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return None
    return tuple(a.arg for a in init.args.args[1:] + init.args.kwonlyargs)


STAGES = {
    # max_abs_mm, min_spread_mm and max_noise_ratio only decide whether the stage stops: they cannot
    # change a shards.h5
    "shards": Stage("insarclust.shards:ShardsConfig",
                    runtime=frozenset({"read_block_mb", "max_abs_mm", "min_spread_mm",
                                       "max_noise_ratio"})),
    # max_noise_ratio only decides whether the stage stops
    "decompose": Stage("insarclust.decompose:DecomposeConfig", runtime=frozenset({"max_noise_ratio"})),
    "graph": Stage("insarclust.graph:GeodesicKNNGraph", runtime=frozenset({"workers", "block_size"})),
    "embed": Stage("insarclust.reservoir:ReservoirEmbedder",
                   elsewhere=frozenset({"n_jobs", "reference_site", "static_weight"}),
                   runtime=frozenset({"batch_size", "matrix", "device"})),
    # moran_features: how many columns the diagnostic Moran's I (attrs only) is measured on,
    # never the smoothed features themselves
    "smooth": Stage("insarclust.smooth:GraphSmoother", stage_keys=frozenset({"standardize", "moran_features"}),
                    runtime=frozenset({"n_threads", "moran_features"})),
    "kmeans": Stage("insarclust.kmeans:BatchedKMeans", renames={"k": "n_clusters"},
                    stage_keys=frozenset({"k_range", "silhouette_sample", "seed_stability"}),
                    elsewhere=frozenset({"variants", "k_sweep"})),
    "dsc": Stage("insarclust.dsc.train:DeepSpatiotemporalClustering", renames={"k": "n_clusters"},
                 stage_keys=frozenset({"silhouette_sample"}), elsewhere=frozenset({"enabled"}),
                 runtime=frozenset({"predict_block_rows", "device", "checkpoint_dir", "log_every_s"})),
}

def stage_keys(name: str, section: Mapping) -> list[str]:
    """The keys of a config section that its stage reads and that can change its result."""
    stage = STAGES[name]
    inverse = {v: k for k, v in stage.renames.items()}
    params = {inverse.get(p, p) for p in stage.param_names()}
    keep = []
    for key, value in section.items():
        flat = list(flatten({key: value})) if isinstance(value, Mapping) else [key]
        if key in stage.runtime or key in stage.elsewhere:
            continue
        if key in stage.stage_keys or any(f in params for f in flat):
            keep.append(key)
    return keep


def result_params(config: Mapping, name: str, drop=()) -> dict:
    """The part of ``config[name]`` that can change the stage's result (rule ``params``)."""
    section = config[name]
    return {k: section[k] for k in stage_keys(name, section) if k not in drop}


def unnamed_static_weight(column: str, geometry) -> float:
    """The weight of a static column that ``embed.static_weight`` (a mapping) does not name: 1,
    or 0 for an acquisition-geometry column (it describes the acquisition, not the ground)."""
    return 0.0 if column in geometry else 1.0


# The representations that pool the states: they never read embed.ridge (the ridge of the
# output and reservoir representations), so it is no result setting of theirs.
POOLED_REPRESENTATIONS = ("last", "mean")


def embed_result_params(config: Mapping) -> dict:
    """The embedding's result settings (``embed_fit`` params): ridge only where it is read."""
    pooled = config["embed"]["representation"] in POOLED_REPRESENTATIONS
    return result_params(config, "embed", drop=("ridge",) if pooled else ())


def embed_settings(config: Mapping) -> str:
    """The embedding's result settings and seed as sorted JSON: stored in ``dyn.h5`` by
    ``embed_gather`` and compared by the workflow before it keeps a recorded split."""
    import json

    return json.dumps({**embed_result_params(config), "seed": config["seed"]}, sort_keys=True)


def same_embed_settings(recorded, config: Mapping) -> bool:
    """Whether settings recorded by :func:`embed_settings` (parsed) are the config's. A record of
    a pooled representation made while it still held ``ridge`` (unread there) matches too."""
    import json

    current = json.loads(embed_settings(config))
    if isinstance(recorded, dict) and "ridge" not in current:
        recorded = {k: v for k, v in recorded.items() if k != "ridge"}
    return recorded == current


def build_stage(name: str, section: Mapping, **fixed):
    """The library object of stage ``name`` (:data:`STAGES`) from its config section."""
    stage = STAGES[name]
    return build(stage.cls(), section, renames=stage.renames, ignore=stage.stage_keys | stage.elsewhere,
                 **fixed)


def stage_kwargs(name: str, section: Mapping, ignore=()) -> dict:
    """:func:`build_stage`'s keyword arguments, for callers that add their own (``n_clusters``)."""
    stage = STAGES[name]
    return kwargs_for(stage.cls(), section, renames=stage.renames,
                      ignore=stage.stage_keys | stage.elsewhere | set(ignore))
