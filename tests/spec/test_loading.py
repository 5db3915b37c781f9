"""CNI 1.1 plugin loading as libcni 1.3 does it (``NetworkConfFromFile``), against the spec text
(docs/cni-spec.md 3.1: ``loadOnlyInlinedPlugins`` "If false (the default), plugin objects from
other sources (libcni: ``<confdir>/<name>/*.conf``) are appended after ``plugins``. It cannot be
true when ``plugins`` is absent."; "A missing ``plugins`` key is allowed, unless
``loadOnlyInlinedPlugins`` is true. A list that ends up with zero plugins after loading is an
error ("no plugin configs found")")."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacni.meta.conf_dir import first_candidate, load_file
from metacni.spec.config import network_list_from_bytes, network_list_from_file
from metacni.spec.errors import CNIError, Code

LIST = {"cniVersion": "1.1.0", "name": "net", "plugins": [{"type": "bridge"}]}


def _write(directory: Path, name: str, data: object) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_sibling_plugins_are_appended_after_the_inline_ones_in_lexical_order(tmp_path: Path):
    path = _write(tmp_path, "10-net.conflist", LIST)
    _write(tmp_path, "net/20-b.conf", {"type": "portmap"})
    _write(tmp_path, "net/10-a.conf", {"type": "tuning"})
    _write(tmp_path, "net/30-c.json", {"type": "not-a-conf"})  # only .conf
    _write(tmp_path, "net/40-d.conflist", {"type": "not-a-conf"})
    _write(tmp_path, "net/sub/50-e.conf", {"type": "in-a-subdirectory"})  # not recursive
    net = network_list_from_file(path)
    assert [p["type"] for p in net.plugins] == ["bridge", "tuning", "portmap"]
    assert net.name == "net" and net.cni_version == "1.1.0"
    assert [p["type"] for p in load_file(path).plugins] == ["bridge", "tuning", "portmap"]  # meta's loader


def test_plugins_may_be_absent_when_the_directory_provides_them(tmp_path: Path):
    path = _write(tmp_path, "10-net.conflist", {"cniVersion": "1.1.0", "name": "net"})
    _write(tmp_path, "net/10-a.conf", {"type": "bridge"})
    assert [p["type"] for p in network_list_from_file(path).plugins] == ["bridge"]
    assert [p["type"] for p in first_candidate(tmp_path).plugins] == ["bridge"]  # the primary too


def test_no_plugins_anywhere_is_no_plugin_configs_found(tmp_path: Path):
    path = _write(tmp_path, "10-net.conflist", {"cniVersion": "1.1.0", "name": "net"})
    with pytest.raises(CNIError) as info:
        network_list_from_file(path)
    assert info.value.code == Code.INVALID_CONFIG and info.value.msg == "no plugin configs found"


@pytest.mark.parametrize("flag", [True, "true", "TRUE"])  # libcni readBool: a bool or the strings
def test_load_only_inlined_plugins_skips_the_directory(tmp_path: Path, flag: object):
    path = _write(tmp_path, "10-net.conflist", {**LIST, "loadOnlyInlinedPlugins": flag})
    _write(tmp_path, "net/10-a.conf", {"type": "tuning"})
    assert [p["type"] for p in network_list_from_file(path).plugins] == ["bridge"]


@pytest.mark.parametrize("flag", [False, "false", "False"])
def test_load_only_inlined_plugins_false_is_the_default(tmp_path: Path, flag: object):
    path = _write(tmp_path, "10-net.conflist", {**LIST, "loadOnlyInlinedPlugins": flag})
    _write(tmp_path, "net/10-a.conf", {"type": "tuning"})
    assert [p["type"] for p in network_list_from_file(path).plugins] == ["bridge", "tuning"]


def test_load_only_inlined_plugins_cannot_be_true_without_plugins(tmp_path: Path):
    path = _write(tmp_path, "10-net.conflist", {"cniVersion": "1.1.0", "name": "net", "loadOnlyInlinedPlugins": True})
    _write(tmp_path, "net/10-a.conf", {"type": "tuning"})
    with pytest.raises(CNIError) as info:
        network_list_from_file(path)
    assert info.value.code == Code.INVALID_CONFIG and "loadOnlyInlinedPlugins" in info.value.details


def test_a_plugin_file_without_type_is_an_error_naming_it(tmp_path: Path):
    path = _write(tmp_path, "10-net.conflist", LIST)
    _write(tmp_path, "net/10-a.conf", {"mtu": 1400})
    with pytest.raises(CNIError) as info:
        network_list_from_file(path)
    assert info.value.code == Code.INVALID_CONFIG and "10-a.conf" in info.value.details
    _write(tmp_path, "net/10-a.conf", "{broken")
    with pytest.raises(CNIError) as info:
        network_list_from_file(path)
    assert info.value.code == Code.DECODE_FAILURE and "10-a.conf" in info.value.details


def test_bytes_and_single_confs_load_nothing_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """libcni: only NetworkConfFromFile of a conflist reads the directory; stdin/NAD bytes
    (NetworkConfFromBytes) and a .conf (ConfListFromConf) do not."""
    _write(tmp_path, "net/10-a.conf", {"type": "tuning"})
    monkeypatch.chdir(tmp_path)
    assert [p["type"] for p in network_list_from_bytes(json.dumps(LIST).encode(), "stdin").plugins] == ["bridge"]
    single = _write(tmp_path, "10-net.conf", {"cniVersion": "1.1.0", "name": "net", "type": "bridge"})
    assert [p["type"] for p in network_list_from_file(single).plugins] == ["bridge"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True), unique=True, max_size=6),
       st.booleans())
def test_order_is_lexical_over_conf_names(names: list[str], inline: bool):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        data: dict = {"cniVersion": "1.1.0", "name": "net"}
        if inline:
            data["plugins"] = [{"type": "bridge"}]
        path = _write(directory, "10-net.conflist", data)
        for name in names:
            _write(directory, f"net/{name}.conf", {"type": f"t-{name}"})
        expected = (["bridge"] if inline else []) + [f"t-{n}" for n in sorted(f"{n}.conf" for n in names)
                                                      for n in [n[:-5]]]
        if not expected:
            with pytest.raises(CNIError):
                network_list_from_file(path)
            return
        assert [p["type"] for p in network_list_from_file(path).plugins] == expected
