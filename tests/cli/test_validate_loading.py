"""``metacni validate`` loads a ``.conflist`` as the ADD path does (libcni 1.3,
``metacni.spec.config.conflist_from_file_bytes``): the plugin files of ``<dir>/<name>/*.conf``
are appended unless ``loadOnlyInlinedPlugins`` is true, so ``plugins`` may be absent; each
sibling file's problems are located in that file."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from metacni.cli.validate_cmd import problems_of
from metacni.spec.config import network_list_from_file
from metacni.spec.errors import CNIError

METACNI = shutil.which("metacni") or "metacni"


def _write(directory: Path, name: str, data: object) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def validate(path: Path) -> tuple[int, list[str]]:
    proc = subprocess.run([METACNI, "validate", str(path), "--no-plugin-check"], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, [line.removeprefix(f"{path}: ") for line in proc.stdout.splitlines()]


def test_a_list_whose_plugins_are_all_in_its_sibling_directory_is_valid(tmp_path: Path) -> None:
    path = _write(tmp_path, "10-net.conflist", {"cniVersion": "1.1.0", "name": "net"})
    _write(tmp_path, "net/10-bridge.conf", {"type": "bridge", "bridge": "cni5",
                                            "ipam": {"type": "host-local", "subnet": "10.5.0.0/24"}})
    _write(tmp_path, "net/20-portmap.conf", {"type": "portmap", "capabilities": {"portMappings": True}})
    assert [p["type"] for p in network_list_from_file(path).plugins] == ["bridge", "portmap"]  # the ADD path
    assert validate(path) == (0, ["valid"])


def test_problems_of_sibling_files_are_located_in_them(tmp_path: Path) -> None:
    path = _write(tmp_path, "10-net.conflist", {"cniVersion": "1.1.0", "name": "net",
                                                "plugins": [{"type": "bridge", "vlan": 1}]})
    _write(tmp_path, "net/10-a.conf", {"type": "bridge", "vlan": 5000})
    _write(tmp_path, "net/20-b.conf", {"mtu": 1400})
    _write(tmp_path, "net/30-c.conf", "{broken")
    _write(tmp_path, "net/40-d.conf", {"type": "bridge", "ipam": {"type": "host-local",
                                                                  "ranges": [[{"subnet": "10.0.0.0/33"}]]}})
    _write(tmp_path, "net/50-e.json", {"type": "bridge", "vlan": 9999})  # not a .conf: not loaded
    rc, found = validate(path)
    assert rc == 1
    assert sorted(line.split(": ", 1)[0] for line in found) == [
        "net/10-a.conf:$.vlan", "net/20-b.conf:$.type", "net/30-c.conf:$", "net/40-d.conf:$.ipam.ranges[0][0].subnet",
    ], found
    assert "net/20-b.conf:$.type: invalid plugin config: missing 'type'" in found


def test_no_plugins_anywhere_and_load_only_inlined_say_what_the_add_path_says(tmp_path: Path) -> None:
    path = _write(tmp_path, "10-net.conflist", {"cniVersion": "1.1.0", "name": "net"})
    rc, found = validate(path)
    assert rc == 1 and found == [f"$.plugins: no plugin configs found: no 'plugins' and no plugin config in "
                                 f"{tmp_path / 'net'}"], found
    _write(tmp_path, "net/10-a.conf", {"type": "bridge"})
    path.write_text(json.dumps({"cniVersion": "1.1.0", "name": "net", "loadOnlyInlinedPlugins": True}))
    assert validate(path) == (1, ["$.plugins: loadOnlyInlinedPlugins is true, and there is no 'plugins' key"])
    # With it, the directory is not read at all: a broken file there does not matter.
    _write(tmp_path, "net/20-b.conf", "{broken")
    path.write_text(json.dumps({"cniVersion": "1.1.0", "name": "net", "loadOnlyInlinedPlugins": "true",
                                "plugins": [{"type": "bridge"}]}))
    assert validate(path) == (0, ["valid"])


plugin_objects = st.sampled_from([
    {"type": "tuning"}, {"type": "x-plugin", "mtu": 1400}, {"type": "x-plugin", "mtu": "big"}, {"mtu": 1},
    {"type": ""}, {"type": "a/b"}, "{broken", [1], {"type": "tuning", "capabilities": {"x": "yes"}},
])


@settings(max_examples=60, deadline=None)
@given(inline=st.none() | st.lists(plugin_objects, max_size=2), siblings=st.lists(plugin_objects, max_size=3),
       only_inlined=st.sampled_from([None, True, False, "true", "FALSE"]), has_dir=st.booleans())
def test_validate_and_the_add_path_agree(inline: list | None, siblings: list, only_inlined: object,
                                         has_dir: bool) -> None:
    """For plugins without an in-process config model, the file is valid exactly when the ADD
    path's loader accepts it."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        data: dict = {"cniVersion": "1.1.0", "name": "net"}
        if inline is not None:
            data["plugins"] = [p if isinstance(p, dict) else {"type": "x", "junk": p} for p in inline]
        if only_inlined is not None:
            data["loadOnlyInlinedPlugins"] = only_inlined
        path = _write(directory, "10-net.conflist", data)
        if has_dir:
            (directory / "net").mkdir()
        for index, plugin in enumerate(siblings):
            _write(directory, f"net/{index:02d}.conf", plugin)
        try:
            network_list_from_file(path)
            loads = True
        except CNIError:
            loads = False
        problems = problems_of(path, None)
        assert (problems == []) == loads, (data, siblings, problems)
