"""Positioned YAML loading: positions, refusals, schema errors with hints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cyborg_smartnic.errors import SourceError
from cyborg_smartnic.yamlsource import (
    MAX_DEPTH,
    Document,
    format_path,
    load_bytes,
    load_document,
    load_text,
    validate_with_schema,
)

SAMPLE = """\
# a comment
name: ovs
groups:
  - vf_count: 2
    physnet: physnet1
  - vf_count: 1
    traits:
      required: [CUSTOM_A, CUSTOM_B]
"""

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "groups"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "description": {"type": "string"},
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["vf_count"],
                "properties": {
                    "vf_count": {"type": "integer", "minimum": 1},
                    "physnet": {"type": "string"},
                    "traits": {"type": "object"},
                },
            },
        },
    },
}


def test_data_and_positions() -> None:
    doc = load_text(SAMPLE, "p.yaml")
    assert doc.data == {
        "name": "ovs",
        "groups": [
            {"vf_count": 2, "physnet": "physnet1"},
            {"vf_count": 1, "traits": {"required": ["CUSTOM_A", "CUSTOM_B"]}},
        ],
    }
    assert doc.position(("name",)) == (2, 1)
    assert doc.position(("groups",)) == (3, 1)
    assert doc.position(("groups", 0)) == (4, 5)
    assert doc.position(("groups", 0, "physnet")) == (5, 5)
    assert doc.position(("groups", 1, "traits", "required")) == (8, 7)
    assert doc.position(("groups", 1, "traits", "required", 1)) == (8, 28)
    assert doc.value_positions[("groups", 0, "physnet")] == (5, 14)


def test_position_falls_back_to_nearest_parent() -> None:
    doc = load_text(SAMPLE, "p.yaml")
    assert doc.position(("groups", 0, "missing", 3)) == (4, 5)
    assert doc.position(("nothing",)) == (2, 1)  # the root mapping starts after the comment
    assert doc.get(("groups", 1, "vf_count")) == 1
    assert doc.get(("groups", 7, "vf_count"), "dflt") == "dflt"


def test_error_helper_formats_file_line_field() -> None:
    doc = load_text(SAMPLE, "p.yaml")
    assert str(doc.error(("groups", 0, "physnet"), "bad")) == "p.yaml:5:5: groups[0].physnet: bad"


def test_format_path() -> None:
    assert format_path(()) == "(document)"
    assert format_path(("a", 0, "b")) == "a[0].b"
    assert format_path(("flavor", "hw:cpu_policy")) == "flavor.hw:cpu_policy"
    assert format_path(("x", "with space")) == 'x["with space"]'


def test_empty_file_is_none() -> None:
    assert load_text("", "e.yaml").data is None
    assert load_text("# only a comment\n", "e.yaml").data is None


def test_timestamps_stay_strings_and_bom_is_ignored() -> None:
    assert load_bytes(b"\xef\xbb\xbfwhen: 2024-01-01\n", "t.yaml").data == {"when": "2024-01-01"}


def test_load_document_reads_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(SAMPLE)
    doc = load_document(path)
    assert isinstance(doc, Document)
    assert doc.file == str(path)
    assert doc.data["name"] == "ovs"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        load_document(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}:1:1: (file): No such file or directory"


def test_oversized_file_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * 2048)
    with pytest.raises(SourceError, match=r":1:1: \(file\): file is larger than 1024 bytes"):
        load_document(path, max_bytes=1024)
    path.write_bytes(b"a: 1\n" + b"#" * (1024 * 1024))
    with pytest.raises(SourceError, match="larger than 1048576 bytes"):
        load_document(path)


REFUSALS = [
    ("not-utf8", b"a: 1\nb: caf\xe9\n", "x.yaml:2:7: (file): not valid UTF-8 (byte 0xe9)"),
    ("anchor", b"a: &x 1\nb: *x\n", "x.yaml:1:4: yaml: anchors and aliases (&, *) are not allowed"),
    ("alias-bomb",
     b"a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n",
     "x.yaml:1:4: yaml: anchors and aliases (&, *) are not allowed"),
    ("duplicate", b"a: 1\nb:\n  c: 1\n  c: 2\n",
     "x.yaml:4:3: b.c: duplicate key (first defined on line 3)"),
    ("int-key", b"groups:\n  1: x\n",
     "x.yaml:2:3: groups.1: key '1' is read as an integer; quote it to make it a string"),
    ("bool-key", b"yes: 1\n",
     "x.yaml:1:1: yes: key 'yes' is read as a boolean; quote it to make it a string"),
    ("list-key", b"? [a, b]\n: 1\n",
     "x.yaml:1:3: (document): keys must be plain strings, not lists or maps"),
    ("merge", b"a:\n  <<: {b: 1}\n", 'x.yaml:2:3: a["<<"]: merge keys (<<) are not allowed'),
    ("syntax", b"a: [1, 2\nb: 3\n",
     "x.yaml:2:2: yaml: syntax error: while parsing a flow sequence, expected ',' or ']', "
     "but got ':'"),
    ("tab-indent", b"a:\n\tb: 1\n",
     "x.yaml:2:1: yaml: syntax error: while scanning for the next token, found character "
     "'\\t' that cannot start any token"),
    ("two-docs", b"a: 1\n---\nb: 2\n",
     "x.yaml:2:1: yaml: syntax error: expected a single document in the stream, but found "
     "another document"),
    ("custom-tag", b"a: !!python/object:os.system x\n",
     "x.yaml:1:4: a: unsupported YAML tag 'tag:yaml.org,2002:python/object:os.system'"),
    ("binary", b"a: !!binary aGk=\n", "x.yaml:1:4: a: unsupported YAML tag "
                                     "'tag:yaml.org,2002:binary'"),
    ("set", b"a: !!set {x, y}\n", "x.yaml:1:4: a: unsupported YAML tag 'tag:yaml.org,2002:set'"),
    ("control-char", b"a: b\x07\n",
     "x.yaml:1:5: (file): control character #x0007 is not allowed in YAML"),
    ("bad-int", b"a: !!int x\n", "x.yaml:1:4: a: invalid int value"),
    ("deep", b"[" * (MAX_DEPTH + 5),
     f"x.yaml:1:{MAX_DEPTH + 1}: yaml: nested deeper than {MAX_DEPTH} levels"),
]


@pytest.mark.parametrize(("raw", "expected"), [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_refusals(raw: bytes, expected: str) -> None:
    with pytest.raises(SourceError) as info:
        load_bytes(raw, "x.yaml")
    assert str(info.value) == expected


def test_alias_bomb_refused_fast() -> None:
    """A billion-laughs document must be refused before anything expands."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    with pytest.raises(SourceError, match="anchors and aliases"):
        load_text("\n".join(lines) + "\n", "bomb.yaml")


def test_schema_errors_all_reported_sorted_with_hints() -> None:
    doc = load_text(
        "groups:\n"
        "  - vf_count: 0\n"
        "    physnt: physnet1\n"
        "  - vf_cont: 2\n"
        "name: Bad_Name\n"
        "descripton: x\n",
        "p.yaml")
    errors = [str(e) for e in validate_with_schema(doc, SCHEMA)]
    assert errors == [
        "p.yaml:2:5: groups[0].vf_count: 0 is less than the minimum 1",
        "p.yaml:3:5: groups[0].physnt: unknown key 'physnt'; did you mean 'physnet'?",
        "p.yaml:4:5: groups[1]: missing required key 'vf_count'",
        "p.yaml:4:5: groups[1].vf_cont: unknown key 'vf_cont'; did you mean 'vf_count'?",
        'p.yaml:5:1: name: "Bad_Name" does not match ^[a-z]+$',
        "p.yaml:6:1: descripton: unknown key 'descripton'; did you mean 'description'?",
    ]


def test_schema_unknown_key_without_close_match_lists_allowed() -> None:
    doc = load_text("name: a\ngroups: [{vf_count: 1}]\nzzz: 1\n", "p.yaml")
    assert [str(e) for e in validate_with_schema(doc, SCHEMA)] == [
        "p.yaml:3:1: zzz: unknown key 'zzz'; allowed keys: description, groups, name",
    ]


def test_schema_type_errors_and_valid_document() -> None:
    doc = load_text("name: a\ngroups:\n  - vf_count: two\n", "p.yaml")
    assert [str(e) for e in validate_with_schema(doc, SCHEMA)] == [
        "p.yaml:3:5: groups[0].vf_count: expected an integer, got a string",
    ]
    assert validate_with_schema(load_text(SAMPLE.replace("ovs", "ovs"), "p.yaml"), SCHEMA) == []


def test_schema_base_path_prefixes_positions() -> None:
    doc = load_text("- name: a\n  groups: []\n- name: b\n  groups: [{vf_count: 1}]\n", "l.yaml")
    assert [str(e) for e in validate_with_schema(doc, SCHEMA, base=(0,))] == [
        "l.yaml:2:3: [0].groups: needs at least 1 item",
    ]
    assert validate_with_schema(doc, SCHEMA, base=(1,)) == []


def test_one_of_reports_the_branch_that_fits() -> None:
    schema = {"oneOf": [{"type": "array", "items": SCHEMA}, SCHEMA]}
    doc = load_text("name: a\ngroups: [{vf_count: -1}]\n", "p.yaml")
    assert [str(e) for e in validate_with_schema(doc, schema)] == [
        "p.yaml:2:11: groups[0].vf_count: -1 is less than the minimum 1",
    ]
