"""Positioned, safe YAML loading for user files (device profiles, host config).

Users edit these files by hand, so every complaint must name the file, line, column and
field. PyYAML's ``SafeLoader`` composes the node graph (which carries marks); we build the
plain Python data from the nodes ourselves so every value keeps its position, and refuse
what a hand-written config never needs: anchors and aliases (alias bombs), duplicate or
non-string keys, merge keys, unusual tags, huge or non-UTF-8 files and deep nesting.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import jsonschema
import yaml
from yaml import events, nodes

from cyborg_smartnic.errors import SourceError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
#: Integers are counts, sizes and indices: 64 bits is plenty, and bounding them keeps
#: Python's 4300-digit conversion limit (and quadratic base-60 parsing) out of reach.
MAX_INT_BITS = 63
MAX_INT_TEXT = 80  # longest integer spelling worth parsing (0b + 64 digits, with _)

PathKey = str | int
JsonPath = tuple[PathKey, ...]
Position = tuple[int, int]

ROOT_FIELD = "(document)"
FILE_FIELD = "(file)"

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("null", "bool", "int", "float", "str")}
_INT_TAG = f"{_TAG}int"
_TIMESTAMP_TAG = f"{_TAG}timestamp"
_MAP_TAG = f"{_TAG}map"
_SEQ_TAG = f"{_TAG}seq"
_MERGE_TAG = f"{_TAG}merge"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_:\-]+")


def format_path(path: Iterable[PathKey]) -> str:
    """``("groups", 0, "vf_count")`` -> ``groups[0].vf_count``; the root is ``(document)``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or ROOT_FIELD


@dataclass(frozen=True)
class Document:
    """Plain data (dict/list/str/int/float/bool/None) plus where each value came from.

    ``positions`` maps a JSON path to the 1-based (line, column) of the mapping key that
    introduces the value (or of the item itself for list items and the root), which is
    where an editor should put the cursor. ``value_positions`` holds the value node's own
    start for callers that want to point inside a line.
    """

    file: str
    data: Any
    positions: Mapping[JsonPath, Position] = field(default_factory=dict)
    value_positions: Mapping[JsonPath, Position] = field(default_factory=dict)

    def position(self, path: Iterable[PathKey]) -> Position:
        """Position of ``path``, or of its nearest parent that has one, else (1, 1)."""
        key = tuple(path)
        while key:
            found = self.positions.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return self.positions.get((), (1, 1))

    def error(self, path: Iterable[PathKey], reason: str) -> SourceError:
        """A ``SourceError`` for ``path`` in this file (not raised: callers collect them)."""
        key = tuple(path)
        line, column = self.position(key)
        return SourceError(file=self.file, line=line, column=column,
                           field=format_path(key), reason=reason)

    def get(self, path: Iterable[PathKey], default: Any = None) -> Any:
        """The value at ``path`` or ``default`` when any step is missing."""
        value = self.data
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return default
        return value


def is_integer(value: object) -> TypeGuard[int]:
    """True for a real integer, never a bool nor a float such as ``6.0``.

    JSON Schema's ``integer`` accepts ``6.0``; a count written that way would reach Nova as
    ``--vcpus 6.0`` and a plan as ``node: 0.0``. Profiles and host.yaml both check with this.
    """
    return isinstance(value, int) and not isinstance(value, bool)


def error_sort_key(error: SourceError) -> tuple[str, int, int, str, str]:
    """Order errors as an editor would list them (``SourceError.sort_key``)."""
    return error.sort_key()


# --------------------------------------------------------------------------- loading


def load_document(path: str | Path, *, max_bytes: int = MAX_BYTES) -> Document:
    """Read and parse ``path``; raise ``SourceError`` naming the file, line and column."""
    name = str(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read(max_bytes + 1)
    except OSError as exc:
        raise SourceError(file=name, line=1, column=1, field=FILE_FIELD,
                          reason=exc.strerror or str(exc)) from exc
    return load_bytes(raw, name, max_bytes=max_bytes)


def load_bytes(raw: bytes, file: str, *, max_bytes: int = MAX_BYTES) -> Document:
    """Parse UTF-8 ``raw`` (already read from ``file``) into a positioned ``Document``."""
    if len(raw) > max_bytes:
        raise SourceError(file=file, line=1, column=1, field=FILE_FIELD,
                          reason=f"file is larger than {max_bytes} bytes; refusing to parse it")
    return load_text(decode_utf8(raw, file), file)


def decode_utf8(raw: bytes, file: str) -> str:
    """``raw`` as text, or a ``SourceError`` pointing at the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8", "replace")
        line, column = _offset_position(before, len(before))
        raise SourceError(file=file, line=line, column=column, field=FILE_FIELD,
                          reason=f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from exc


def load_text(text: str, file: str) -> Document:
    """Parse YAML ``text``; ``file`` is only used in error messages."""
    if text.startswith("\ufeff"):
        text = text[1:]
    loader: _PositionLoader | None = None
    try:
        loader = _PositionLoader(text, file)
        root = loader.get_single_node()
    except SourceError:
        raise
    except yaml.MarkedYAMLError as exc:
        raise _marked_error(file, exc) from exc
    except yaml.reader.ReaderError as exc:
        line, column = _offset_position(text, exc.position)
        raise SourceError(file=file, line=line, column=column, field=FILE_FIELD,
                          reason=f"control character #x{exc.character:04x} is not allowed "
                                 f"in YAML") from exc
    except yaml.YAMLError as exc:
        raise SourceError(file=file, line=1, column=1, field=FILE_FIELD,
                          reason=str(exc).splitlines()[0]) from exc
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return Document(file=file, data=None, positions={(): (1, 1)},
                        value_positions={(): (1, 1)})
    builder = _Builder(file, loader)
    start = _mark(root)
    builder.positions[()] = start
    builder.value_positions[()] = start
    data = builder.build(root, ())
    return Document(file=file, data=data, positions=builder.positions,
                    value_positions=builder.value_positions)


def _offset_position(text: str, offset: int) -> Position:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def _mark(node: nodes.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _marked_error(file: str, exc: yaml.MarkedYAMLError) -> SourceError:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    return SourceError(file=file, line=line, column=column, field="yaml",
                       reason=f"syntax error: {problem}")


class _PositionLoader(yaml.SafeLoader):
    """SafeLoader's composer with anchors, aliases and deep nesting refused up front."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self._file = file
        self._depth = 0

    def compose_node(self, parent: nodes.Node | None, index: int) -> nodes.Node | None:
        event: events.Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if isinstance(event, events.AliasEvent) or getattr(event, "anchor", None):
            raise SourceError(file=self._file, line=line, column=column, field="yaml",
                              reason="anchors and aliases (&, *) are not allowed")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise SourceError(file=self._file, line=line, column=column, field="yaml",
                                  reason=f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Builder:
    """Turns a composed node tree into plain data, recording a position per path."""

    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader
        self.positions: dict[JsonPath, Position] = {}
        self.value_positions: dict[JsonPath, Position] = {}

    def fail(self, node: nodes.Node, path: JsonPath, reason: str) -> SourceError:
        line, column = _mark(node)
        return SourceError(file=self.file, line=line, column=column,
                           field=format_path(path), reason=reason)

    def build(self, node: nodes.Node, path: JsonPath) -> Any:
        self.value_positions[path] = _mark(node)
        if isinstance(node, nodes.MappingNode):
            if node.tag != _MAP_TAG:
                raise self.fail(node, path, f"unsupported YAML tag {node.tag!r}")
            return self.build_mapping(node, path)
        if isinstance(node, nodes.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self.fail(node, path, f"unsupported YAML tag {node.tag!r}")
            items = []
            for index, item in enumerate(node.value):
                self.positions[(*path, index)] = _mark(item)
                items.append(self.build(item, (*path, index)))
            return items
        return self.scalar(node, path)

    def scalar(self, node: nodes.Node, path: JsonPath) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return str(node.value)  # keep dates as written: the data stays JSON-shaped
        if node.tag not in _SCALAR_TAGS:
            raise self.fail(node, path, f"unsupported YAML tag {node.tag!r}")
        too_large = f"integer {_shorten(str(node.value))} is too large (more than " \
                    f"{MAX_INT_BITS} bits)"
        if node.tag == _INT_TAG and len(str(node.value)) > MAX_INT_TEXT:
            raise self.fail(node, path, too_large)
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            raise self.fail(node, path, f"invalid {node.tag.rsplit(':', 1)[-1]} value") from exc
        if is_integer(value) and value.bit_length() > MAX_INT_BITS:
            raise self.fail(node, path, too_large)
        return value

    def build_mapping(self, node: nodes.MappingNode, path: JsonPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise self.fail(key_node, (*path, "<<"), "merge keys (<<) are not allowed")
            if not isinstance(key_node, nodes.ScalarNode):
                raise self.fail(key_node, path, "keys must be plain strings, not lists or maps")
            key = self.scalar(key_node, path)
            if not isinstance(key, str):
                raise self.fail(key_node, (*path, str(key_node.value)),
                                f"key {key_node.value!r} is read as {_yaml_type(key)}; "
                                f"quote it to make it a string")
            child = (*path, key)
            if key in seen:
                first_line = seen[key][0]
                raise self.fail(key_node, child, f"duplicate key (first defined on line "
                                                 f"{first_line})")
            seen[key] = _mark(key_node)
            self.positions[child] = seen[key]
            result[key] = self.build(value_node, child)
        return result


def _shorten(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return type(value).__name__


# --------------------------------------------------------------------------- validation


_JSON_TYPES = {
    dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
    float: "a number", type(None): "null",
}


def _describe(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


#: Draft 2020-12 with ``integer`` meaning ``is_integer`` (no ``6.0``), for every schema here.
_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # untyped stub
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: is_integer(value)))


def validate_with_schema(doc: Document, schema: Mapping[str, Any],
                         *, base: JsonPath = ()) -> list[SourceError]:
    """Every schema violation in ``doc`` (at ``base``) as a positioned ``SourceError``.

    Uses JSON Schema Draft 2020-12. Errors are sorted by position; an unknown key gets a
    "did you mean" hint from the property names the schema allows at that place.
    """
    validator = _Validator(schema)
    instance = doc.get(base)
    found: list[SourceError] = []
    for error in validator.iter_errors(instance):
        found.extend(_convert(doc, base, error))
    unique = {str(e): e for e in found}
    return sorted(unique.values(), key=error_sort_key)


def _convert(doc: Document, base: JsonPath,
             error: jsonschema.ValidationError) -> Iterator[SourceError]:
    path = (*base, *error.absolute_path)
    if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        path = (*path, error.instance)  # point at the offending key, not at its mapping
    kind = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        for key in instance:
            if key in allowed or any(p.search(key) for p in patterns):
                continue
            yield doc.error((*path, key), _unknown_key(key, allowed))
        return
    if kind in ("oneOf", "anyOf") and error.context:
        branch = _matching_branch(error.context)
        if branch is not None:
            for sub in branch:
                yield from _convert(doc, base, sub)
            return
    yield doc.error(path, _message(error, instance, schema))


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if not close and allowed:
        hint = f"; allowed keys: {', '.join(allowed)}"
    return f"unknown key {key!r}{hint}"


def _matching_branch(
        context: list[jsonschema.ValidationError]) -> list[jsonschema.ValidationError] | None:
    """The errors of the one oneOf/anyOf branch whose type fits, when exactly one does."""
    branches: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in context:
        index = sub.relative_schema_path[0] if sub.relative_schema_path else -1
        branches.setdefault(int(index), []).append(sub)
    fitting = [errs for errs in branches.values()
               if not any(e.validator in ("type", "const", "enum") and not e.relative_path
                          for e in errs)]
    return fitting[0] if len(fitting) == 1 else None


def _message(error: jsonschema.ValidationError, instance: Any,
             schema: Mapping[str, Any]) -> str:
    kind = str(error.validator)
    value: Any = error.validator_value
    custom = schema.get("x-message")
    if isinstance(custom, str) and kind not in ("required", "type"):
        return custom
    if kind == "required":
        missing = [k for k in value if isinstance(instance, dict) and k not in instance]
        return "missing required key " + ", ".join(repr(k) for k in missing)
    if kind == "type":
        return _wrong_type(instance, value)
    if kind == "dependentRequired" and isinstance(instance, dict):
        pairs = [f"{key!r} needs {dep!r}" for key, deps in value.items() if key in instance
                 for dep in deps if dep not in instance]
        return "; ".join(pairs) or error.message
    simple = _MESSAGES.get(kind)
    return simple(instance, value) if simple is not None else error.message


def _wrong_type(instance: Any, value: Any) -> str:
    wanted = value if isinstance(value, list) else [value]
    names = " or ".join(_SCHEMA_TYPES.get(str(t), str(t)) for t in wanted)
    if isinstance(instance, float) and "integer" in wanted:
        whole = instance.is_integer()
        hint = f" (write {int(instance)}: integers have no decimal point)" if whole else ""
        return f"expected {names}, got the number {instance!r}{hint}"
    return f"expected {names}, got {_describe(instance)}"


def _s(count: Any) -> str:
    return "s" if count != 1 else ""


# validator -> message from (instance, the validator's value in the schema)
_MESSAGES: dict[str, Callable[[Any, Any], str]] = {
    "enum": lambda instance, value: (f"{json.dumps(instance)} is not one of: "
                                     f"{', '.join(json.dumps(c) for c in value)}"),
    "const": lambda _, value: f"must be {json.dumps(value)}",
    "pattern": lambda instance, value: f"{json.dumps(instance)} does not match {value}",
    "minimum": lambda instance, value: f"{instance} is less than the minimum {value}",
    "maximum": lambda instance, value: f"{instance} is more than the maximum {value}",
    "minItems": lambda _, value: f"needs at least {value} item{_s(value)}",
    "maxItems": lambda _, value: f"allows at most {value} item{_s(value)}",
    "minLength": lambda _, value: f"must not be shorter than {value} character{_s(value)}",
    "maxLength": lambda _, value: f"must not be longer than {value} characters",
    "uniqueItems": lambda _, __: "items must be unique",
    "minProperties": lambda _, value: f"needs at least {value} key{_s(value)}",
}


_SCHEMA_TYPES = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "a boolean", "null": "null",
}
