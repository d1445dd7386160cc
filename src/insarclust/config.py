"""Configuration helpers shared by the workflow and the library.

``snakemake --config 'kmeans={"k": 6}'`` hands nested values over as strings
(Snakemake parses them with YAML's BaseLoader), so the schema would reject
``"6"`` for an integer. :func:`coerce_to_schema` turns such strings into the
type the schema asks for, before validation, wherever the plain string is not
valid there itself.
"""
from __future__ import annotations

from typing import Any, Mapping

import yaml
from jsonschema import Draft202012Validator


def _valid(value: Any, schema: Mapping, defs: Mapping) -> bool:
    return Draft202012Validator({**schema, "$defs": defs}).is_valid(value)


def _resolve(schema: Mapping, defs: Mapping) -> Mapping:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**defs[ref.split("/")[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _coerce(value: Any, schema: Mapping, defs: Mapping) -> Any:
    schema = _resolve(schema or {}, defs)
    for key in ("oneOf", "anyOf"):
        for option in schema.get(key, ()):
            candidate = _coerce(value, option, defs)
            if _valid(candidate, option, defs):
                return candidate
    if isinstance(value, str):
        if _valid(value, schema, defs):
            return value
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        # "6" -> 6, "false" -> False, "null" -> None, "[2, 8]" -> [2, 8]
        if isinstance(parsed, str):
            return value
        parsed = _coerce(parsed, schema, defs)
        return parsed if _valid(parsed, schema, defs) else value
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


def first_schema_error(instance: Any, schema: Mapping) -> tuple[list, str] | None:
    """``(path, message)`` of the first schema violation (path of keys/indices), or None."""
    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = errors[0]
    return [str(p) for p in err.absolute_path], err.message
