"""Profile validation: the bad-profile corpus, refusals of hostile files, the schema file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from cyborg_smartnic.profiles import schema
from cyborg_smartnic.profiles.loader import ProfileValidationError, check_profiles, load_profiles
from cyborg_smartnic.profiles.validate import CYBORG_STANDARD_RESOURCE_CLASSES

HERE = Path(__file__).parent
CORPUS = HERE / "bad_profiles"
REPO = HERE.parent.parent
EXAMPLES = REPO / "profiles"


def _expected() -> dict[str, list[str]]:
    cases: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (CORPUS / "expected.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("== "):
            current = cases.setdefault(line[3:], [])
        elif current is not None:
            current.append(line)
    return cases


EXPECTED = _expected()


def test_corpus_is_complete_and_large_enough() -> None:
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "expected.txt"}
    assert on_disk == set(EXPECTED)
    assert len(EXPECTED) >= 30
    assert all(EXPECTED.values()), "every case expects at least one error"


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_profile(case: str) -> None:
    path = CORPUS / case
    placeholder = "DIR" if path.is_dir() else "FILE"
    profiles, errors = check_profiles([path])
    assert profiles == []
    assert [str(e).replace(str(path), placeholder) for e in errors] == EXPECTED[case]


def test_every_error_line_has_file_line_column_field() -> None:
    shape = re.compile(r"^(FILE|DIR/[a-z]+\.yaml):\d+:\d+: [^:]+.*: .+$")
    for case, lines in EXPECTED.items():
        for line in lines:
            assert shape.match(line), (case, line)


def test_all_files_validated_before_failing(tmp_path: Path) -> None:
    """Errors of every file come back together, in file order, and no profile is returned."""
    (tmp_path / "a.yaml").write_text("name: a\ngroups:\n  - vf_count: 0\n")
    (tmp_path / "b.yaml").write_text("name: b\ngroups:\n  - vf_count: 1\n")
    (tmp_path / "c.yaml").write_text("name: c\ngroups:\n  - vf_count: 1\n    vendor: acme\n")
    (tmp_path / "notes.txt").write_text("ignored: not a profile file")
    with pytest.raises(ProfileValidationError) as info:
        load_profiles([tmp_path])
    lines = [str(e) for e in info.value.errors]
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'a.yaml'}:3:5: groups[0].vf_count:")
    assert lines[1].startswith(f"{tmp_path / 'c.yaml'}:4:5: groups[0].vendor:")
    assert str(info.value) == "2 error(s) in device profiles; nothing was done"


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _, errors = check_profiles([tmp_path / "nope.yaml", tmp_path / "empty"])
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'empty'}:1:1: (file): directory holds no *.yaml or *.yml file",
        f"{tmp_path / 'nope.yaml'}:1:1: (file): no such file or directory",
    ]


def test_huge_file_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: a\ngroups:\n  - vf_count: 1\n" + "# padding\n" * 120_000)
    _, errors = check_profiles([big])
    assert [str(e) for e in errors] == [
        f"{big}:1:1: (file): file is larger than 1048576 bytes; refusing to parse it"]


def test_alias_bomb_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]"
              for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb.write_text("\n".join(lines) + "\nname: x\ngroups: [{vf_count: 1}]\n")
    _, errors = check_profiles([bomb])
    assert [str(e) for e in errors] == [
        f"{bomb}:1:4: yaml: anchors and aliases (&, *) are not allowed"]


def test_examples_are_valid() -> None:
    profiles, errors = check_profiles([EXAMPLES])
    assert errors == []
    assert sorted(p.name for p in profiles) == [
        "bluefield-dpu-port", "bluefield-nic-vfs", "dpdk-vfio", "e810-comms-gtp", "ovs-offload",
        "sriov-port",
        "upf-5g", "xdp-netdev"]


def test_list_file_holds_several_profiles(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("- name: one\n  groups: [{vf_count: 1}]\n"
                    "- name: two\n  groups: [{vf_count: 2, physnet: physnet1}]\n")
    profiles = load_profiles([path])
    assert [(p.name, p.groups[0].vf_count, p.source) for p in profiles] == [
        ("one", 1, f"{path}:1"), ("two", 2, f"{path}:3")]


def test_published_schema_is_current_and_accepts_examples() -> None:
    published = REPO / "docs" / "profile.schema.json"
    assert published.read_text() == schema.published_text()
    document = json.loads(published.read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    validator = jsonschema.Draft202012Validator(document)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == [], path
    as_list = [yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))]
    assert list(validator.iter_errors(as_list)) == []
    assert list(validator.iter_errors({"name": "x"})) != []


def test_standard_resource_classes_match_cyborg() -> None:
    from cyborg.common import constants

    assert set(CYBORG_STANDARD_RESOURCE_CLASSES) == set(constants.SUPPORT_RESOURCES)


def test_name_pattern_is_cyborgs() -> None:
    import cyborg

    source = Path(cyborg.__file__).parent / "api" / "controllers" / "v2" / "device_profiles.py"
    assert f'NAME = "{schema.NAME_PATTERN}"' in source.read_text()
