"""host-local's ipam model is its one check: what the hand parser of ``config.load`` accepted
(kept here as the reference) it accepts, with the same range sets, and refuses the rest."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.engine.request import Invocation, Request
from metacni.plugin import CNIError, Code, validate_config
from metacni_plugins.host_local import config
from metacni_plugins.host_local.model import DEFAULT_DATA_DIR, HostLocalConfig
from metacni_plugins.host_local.ranges import RangeError, RangeSet, check_disjoint, parse_range_set


def old_sets(ipam: dict[str, Any]) -> tuple[RangeSet, ...] | None:
    """The replaced hand parse of the ranges: legacy range first, then ``ranges``; None when refused."""
    raw: list[tuple[str, Any]] = []
    if ipam.get("subnet"):
        raw.append(("ipam", [{k: ipam.get(k) for k in ("subnet", "rangeStart", "rangeEnd", "gateway")}]))
    raw += [(f"ipam.ranges[{i}]", item) for i, item in enumerate(ipam.get("ranges") or [])]
    try:
        sets = tuple(parse_range_set(items, where) for where, items in raw)
        check_disjoint(sets)
    except RangeError:
        return None
    return sets


def new_sets(ipam: dict[str, Any]) -> tuple[RangeSet, ...] | None:
    try:
        return validate_config(HostLocalConfig, {"ipam": ipam}, "n").ipam.range_sets
    except CNIError:
        return None


subnets = st.sampled_from(["10.0.0.0/24", "10.0.0.0/25", "10.0.1.0/24", "10.0.0.0/33", "10.0.0.1/24", "fd00::/64",
                           "fd00::/127", "x", ""])
addresses = st.one_of(st.none(), st.sampled_from(["10.0.0.5", "10.0.0.200", "10.0.1.7", "fd00::9", "bogus", ""]))
ranges = st.fixed_dictionaries({"subnet": subnets}, optional={"rangeStart": addresses, "rangeEnd": addresses,
                                                             "gateway": addresses})
ipams = st.fixed_dictionaries({"type": st.just("host-local")}, optional={
    "ranges": st.lists(st.lists(ranges, min_size=1, max_size=3), max_size=3),
    "subnet": subnets, "rangeStart": addresses, "gateway": addresses})


@given(ipams)
def test_model_range_sets_are_the_hand_parsers(ipam: dict[str, Any]) -> None:
    assert new_sets(ipam) == old_sets(ipam)


def request(ipam: dict[str, Any], name: str = "net", runtime: dict[str, Any] | None = None) -> Request:
    conf = {"cniVersion": "1.0.0", "name": name, "type": "host-local", "ipam": ipam, "runtimeConfig": runtime or {}}
    return Request(Invocation("ADD", "c1", "", "eth0"), conf)


def test_nulls_and_empty_strings_are_defaults() -> None:
    cfg = config.load(request({"type": "host-local", "subnet": "10.7.0.0/24", "dataDir": None, "resolvConf": "",
                               "routes": None, "ranges": None}))
    assert (cfg.data_dir, cfg.resolv_conf, cfg.routes) == (DEFAULT_DATA_DIR, None, ())
    assert [str(r) for rs in cfg.range_sets for r in rs] == ["10.7.0.1-10.7.0.254"]


def test_runtime_ranges_come_first_and_must_not_overlap(tmp_path: Path) -> None:
    ipam = {"type": "host-local", "dataDir": str(tmp_path), "ranges": [[{"subnet": "10.8.0.0/24"}]]}
    cfg = config.load(request(ipam, runtime={"ipRanges": [[{"subnet": "10.9.0.0/24"}]]}))
    assert [str(rs[0].subnet) for rs in cfg.range_sets] == ["10.9.0.0/24", "10.8.0.0/24"]
    with pytest.raises(CNIError) as err:
        config.load(request(ipam, runtime={"ipRanges": [[{"subnet": "10.8.0.0/25"}]]}))
    assert err.value.code == Code.INVALID_CONFIG and "overlaps" in err.value.details
    with pytest.raises(CNIError) as err:
        config.load(request({"type": "host-local", "dataDir": str(tmp_path)}))
    assert "no IP ranges" in err.value.details


def test_del_needs_only_the_location(tmp_path: Path) -> None:
    """DEL, CHECK and GC read dataDir and resolvConf only: a broken range never blocks a release."""
    ipam = {"type": "host-local", "dataDir": str(tmp_path), "ranges": [[{"subnet": "10.0.0.0/33"}]]}
    assert config.load_location(request(ipam)).data_dir == str(tmp_path)
    with pytest.raises(CNIError) as err:
        config.load(request(ipam))
    assert "$.ipam.ranges[0][0].subnet" in err.value.details and "'net'" in err.value.details
    with pytest.raises(CNIError) as err:
        config.load_location(request({"type": "host-local", "dataDir": 5}))
    assert "$.ipam.dataDir" in err.value.details


def test_network_names_cannot_leave_the_data_dir(tmp_path: Path) -> None:
    for name in ("..", "a/b", f"x{uuid.uuid4().hex[:4]}/.."):
        with pytest.raises(CNIError) as err:
            config.load_location(request({"type": "host-local", "dataDir": str(tmp_path)}, name=name))
        assert err.value.code == Code.INVALID_CONFIG


def test_a_symlinked_store_cannot_lead_out(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    name = f"net-{uuid.uuid4().hex[:8]}"
    (data / name).symlink_to(outside)
    with pytest.raises(CNIError) as err:
        config.load_location(request({"type": "host-local", "dataDir": str(data)}, name=name))
    assert "escape" in err.value.details
    (data / name).unlink()
    (data / name).mkdir()  # a real directory is the store
    assert config.load_location(request({"type": "host-local", "dataDir": str(data)}, name=name)).network == name
