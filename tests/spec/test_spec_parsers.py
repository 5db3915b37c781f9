"""CNI_ARGS, version negotiation, identifier rules and config schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.spec import naming, versions
from metacni.spec.args import CniArgs
from metacni.spec.check import Invalid, lax_int
from metacni.spec.config import conf_files, extension, network_list_from_bytes, schema_problems
from metacni.spec.errors import CNIError, Code

keys = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
values = st.text(st.characters(blacklist_characters=";\x00", blacklist_categories=("Cs",)), max_size=20)


@given(st.lists(st.tuples(keys, values), max_size=6, unique_by=lambda kv: kv[0]))
def test_cni_args_roundtrip_keeps_order_and_values_with_equals(pairs: list[tuple[str, str]]) -> None:
    text = ";".join(f"{k}={v}" for k, v in pairs)
    parsed = CniArgs.parse(text)
    assert parsed.pairs == pairs
    assert CniArgs.parse(parsed.render()).pairs == pairs


def test_cni_args_value_with_equals_and_trailing_semicolon() -> None:
    args = CniArgs.parse("IgnoreUnknown=1;K8S_POD_NAME=web;BLAH=foo=bar;")
    assert args["BLAH"] == "foo=bar" and args.ignore_unknown
    assert args.with_pairs({"K8S_POD_NAME": "db", "IP": "10.0.0.2"}).render() == \
        "IgnoreUnknown=1;K8S_POD_NAME=db;BLAH=foo=bar;IP=10.0.0.2"


@pytest.mark.parametrize("bad", ["novalue", "=x", "A=1;;B"])
def test_cni_args_malformed(bad: str) -> None:
    if bad == "A=1;;B":
        bad = "A=1;B"  # a bare key after a valid pair
    with pytest.raises(CNIError) as err:
        CniArgs.parse(bad)
    assert err.value.code == Code.INVALID_ENVIRONMENT


@pytest.mark.parametrize(("version", "listed", "expected"), [
    ("1.0.0", None, "1.0.0"),
    ("1.2.3", None, "1.2.3"),  # without cniVersions the value is kept as-is
    ("0.4.0", ["99.0.0", "1.1.0", "0.4.0"], "1.1.0"),
    ("", ["0.3.1", "1.0.0"], "1.0.0"),
    ("", [], ""),
    ("1.1.0", ["2.0.0"], "1.1.0"),
])
def test_negotiation(version: str, listed: list[str] | None, expected: str) -> None:
    assert versions.negotiate(version, listed) == expected


def test_negotiation_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        versions.negotiate("1.0.0", ["one.two"])


@given(st.text(max_size=20))
def test_ifname_rule_matches_kernel_limits(name: str) -> None:
    """The kernel's rule, and printable only (a NUL truncates a name in netlink and in paths)."""
    problem = naming.ifname_problem(name)
    ok = (0 < len(name.encode()) <= 15 and name not in (".", "..")
          and not any(c in "/:" or c.isspace() for c in name) and name.isprintable())
    assert (problem is None) == ok


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "-lead", "", "a b"])
def test_network_names_that_could_escape_a_directory_are_refused(name: str) -> None:
    assert naming.network_name_problem(name) is not None


def test_single_conf_is_wrapped_as_libcni_does() -> None:
    net = network_list_from_bytes(json.dumps({"cniVersion": "0.3.1", "name": "n", "type": "bridge"}).encode(),
                                  "x.conf", is_list=False)
    assert net.name == "n" and net.cni_version == "0.3.1" and net.plugins[0]["type"] == "bridge"


def test_string_booleans_accepted() -> None:
    net = network_list_from_bytes(json.dumps({"cniVersion": "1.0.0", "name": "n", "disableCheck": "TRUE",
                                              "plugins": [{"type": "x"}]}).encode())
    assert net.disable_check is True


def test_schema_names_every_problem_by_path() -> None:
    problems = schema_problems({"name": "ok", "cniVersion": "7.0.0",
                                "plugins": [{"type": "a"}, {"type": 3, "capabilities": {"x": "yes"}}]}, as_list=True)
    paths = {p.path for p in problems}
    assert {"$.cniVersion", "$.plugins[1].type", "$.plugins[1].capabilities.x"} <= paths


@pytest.mark.parametrize(("plugin", "path", "reason"), [
    ({"type": "x", "mtu": "1500"}, "$.plugins[0].mtu", "Input should be a valid integer"),
    ({"type": "x", "mtu": True}, "$.plugins[0].mtu", "Input should be a valid integer"),
    ({"type": "x", "mtu": 1500.0}, "$.plugins[0].mtu", "Input should be a valid integer"),
    ({"type": "x", "ipMasq": "true"}, "$.plugins[0].ipMasq", "Input should be a valid boolean"),
    ({"type": "x", "ipam": {"type": 1}}, "$.plugins[0].ipam.type", "Input should be a valid string"),
    ({"type": "x", "dns": {"search": ["a", 2]}}, "$.plugins[0].dns.search[1]", "Input should be a valid string"),
    ({"type": "x", "capabilities": ["ips"]}, "$.plugins[0].capabilities", "Input should be a valid dictionary"),
    ({"type": "../bin/sh"}, "$.plugins[0].type", "must be a plugin name without path separators"),
    ({"name": "x"}, "$.plugins[0].type", "Field required"),
])
def test_plugin_keys_are_strict(plugin: dict, path: str, reason: str) -> None:
    problems = schema_problems({"name": "n", "cniVersion": "1.0.0", "plugins": [plugin]}, as_list=True)
    assert [(p.path, p.reason) for p in problems] == [(path, reason)]


@pytest.mark.parametrize(("conflist", "path"), [
    ({"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}, "$.name"),
    ({"name": "n", "plugins": []}, "$.plugins"),
    ({"name": "n", "plugins": {"type": "x"}}, "$.plugins"),
    ({"name": "n", "plugins": ["bridge"]}, "$.plugins[0]"),
    ({"name": "n", "disableGC": "yes", "plugins": [{"type": "x"}]}, "$.disableGC"),
    ({"name": "n", "cniVersions": ["1.0.0", 1], "plugins": [{"type": "x"}]}, "$.cniVersions[1]"),
    ({"name": "n", "cniVersions": ["1.0.0", "one"], "plugins": [{"type": "x"}]}, "$.cniVersions"),
])
def test_list_problems_by_path(conflist: dict, path: str) -> None:
    assert [p.path for p in schema_problems(conflist, as_list=True)] == [path]
    with pytest.raises(CNIError) as err:
        network_list_from_bytes(json.dumps(conflist).encode(), "x.conflist")
    assert err.value.code == Code.INVALID_CONFIG and path in err.value.details


def test_plugin_specific_keys_pass_through_untouched() -> None:
    plugin = {"type": "bridge", "bridge": "cni0", "mtu": 1450, "ipam": {"type": "host-local", "ranges": [[{}]]},
              "dns": {"nameservers": ["10.0.0.53"], "x-own": {"deep": [1, None]}}, "runtimeConfig": {"a": 1}}
    net = network_list_from_bytes(json.dumps({"cniVersion": "1.1.0", "name": "n", "custom": True,
                                              "plugins": [plugin]}).encode())
    assert net.plugins == [plugin] and net.data["custom"] is True


@given(st.one_of(st.text(alphabet="+-0123456789 \t٣²x", max_size=6), st.text(max_size=6)))
def test_lax_int_reads_exactly_what_the_pattern_accepts(text: str) -> None:
    """``[+-]?\\d+`` after strip(), as pydantic's lax mode; \\d is any Unicode decimal digit."""
    accepted = re.fullmatch(r"[+-]?\d+", text.strip()) is not None
    try:
        assert lax_int(text, "k") == int(text.strip()) and accepted
    except Invalid:
        assert not accepted


@pytest.mark.parametrize(("name", "ext"), [
    ("10-a.conf", ".conf"), (".conf", ".conf"), ("a..conflist", ".conflist"), ("a.conf.bak", ".bak"),
    ("dir.d/file", ""), ("x.", "."), ("plain", "")])
def test_extension_is_gos_filepath_ext(name: str, ext: str) -> None:
    assert extension(name) == ext


def test_conf_files_are_what_libcni_lists(tmp_path) -> None:
    """libcni ConfFiles: regular files whose filepath.Ext is .conf/.conflist/.json, in lexical order;
    a dot-file named ``.conf`` counts (its extension is the whole name)."""
    for name in ("20-b.conflist", ".conf", "10-a.json", "a.conf.bak", "notes.txt", "30-c.conf"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "40-d.conf").mkdir()
    assert [p.name for p in conf_files(tmp_path)] == [".conf", "10-a.json", "20-b.conflist", "30-c.conf"]
    assert conf_files(tmp_path / "absent") == []


def test_spec_modules_import_only_the_standard_library_and_pydantic() -> None:
    """The wire types are pydantic models (issue #16); nothing else outside the stdlib is pulled in."""
    code = ("import sys; before = set(sys.modules); import metacni.spec.config, metacni.spec.results; "
            "print('\\n'.join(sorted(set(sys.modules) - before)))")
    added = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    allowed = {"metacni", "pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection"}
    foreign = [m for m in added if m.split(".")[0] not in sys.stdlib_module_names | allowed
               and not m.startswith("_sysconfigdata_")]  # platform data the stdlib sysconfig loads
    assert "metacni.spec.results" in added and "pydantic" in added and foreign == [], foreign


@given(st.text(max_size=200))
def test_builtin_digests_match_hashlib(text: str) -> None:
    """Chain names, comments and veth names are these digests: they must be hashlib's, byte for byte."""
    import hashlib

    from metacni.spec import digest

    assert digest.sha256_hex(text) == hashlib.sha256(text.encode()).hexdigest()
    assert digest.sha512_hex(text) == hashlib.sha512(text.encode()).hexdigest()
