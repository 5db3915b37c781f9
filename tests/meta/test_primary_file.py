"""Which conf file is the primary network: the lexically first one that is not metacni's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metacni.meta.conf_dir import candidate_files, find_file_by_name, first_candidate, load_file
from metacni.spec.errors import CNIError, Code

BRIDGE = {"cniVersion": "1.0.0", "name": "primary", "plugins": [{"type": "bridge"}]}
META = {"cniVersion": "1.0.0", "name": "meta", "type": "metacni"}

LAYOUTS = {
    "ours by name and by type come first": {"00-metacni.conf": BRIDGE, "05-other.conf": META,
                                            "10-primary.conflist": BRIDGE, "20-later.conf": {**BRIDGE, "name": "x"}},
    "a single .conf is wrapped": {"10-single.conf": {"cniVersion": "0.4.0", "name": "single", "type": "ptp"}},
    "own file under another name": {"01-node.conf": BRIDGE, "10-primary.json": {**BRIDGE, "name": "json"}},
    "a broken file is still the first candidate": {"10-broken.conf": "{not json", "20-fine.conflist": BRIDGE},
    "only ours": {"00-metacni.conf": META},
    "empty": {},
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_first_candidate_is_the_first_of_candidate_files(tmp_path: Path, layout: dict[str, object]):
    for name, content in layout.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    files = candidate_files(tmp_path, own_file="01-node.conf")

    def outcome(load):  # the network, or the error's code
        try:
            net = load()
        except CNIError as err:
            return ("error", err.code)
        return None if net is None else (net.name, net.plugins, net.source)

    expected = outcome(lambda: load_file(files[0])) if files else None
    assert outcome(lambda: first_candidate(tmp_path, own_file="01-node.conf")) == expected
    if "10-broken.conf" in layout:  # not skipped for a later good file: the operator must see it
        assert expected == ("error", Code.DECODE_FAILURE)


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_find_file_by_name_is_the_first_candidate_carrying_it(tmp_path: Path, layout: dict[str, object]):
    """A NAD-less network name resolves to the first candidate file whose JSON ``name`` matches;
    unreadable or broken files are skipped, metacni's own never match."""
    for name, content in layout.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    for wanted in ("primary", "meta", "single", "json", "x", "absent"):
        matching = [p for p in candidate_files(tmp_path, own_file="01-node.conf")
                    if not p.name.endswith("broken.conf") and json.loads(p.read_text()).get("name") == wanted]
        found = find_file_by_name(tmp_path, wanted, own_file="01-node.conf")
        if not matching:
            assert found is None, wanted
            continue
        expected = load_file(matching[0])
        assert found is not None and (found.source, found.plugins) == (expected.source, expected.plugins)
