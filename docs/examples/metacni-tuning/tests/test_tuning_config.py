"""Config parsing: every bad field is a code-7 error naming it, before anything is touched."""

from __future__ import annotations

import pytest

from metacni.engine.request import Invocation, Request
from metacni.plugin import CniArgs, CNIError, Code

config = pytest.importorskip("metacni_tuning.config", reason="pip install -e docs/examples/metacni-tuning")


def request(conf: dict, args: str = "", runtime: dict | None = None, ifname: str = "eth0") -> Request:
    full = {"cniVersion": "1.0.0", "name": "net", "type": "tuning-py", **conf}
    if runtime is not None:
        full["runtimeConfig"] = runtime
    return Request(Invocation(command="ADD", ifname=ifname, args=CniArgs.parse(args)), full)


def test_sources_in_order_config_args_runtime():
    t = config.load(request({"mtu": 1400, "mac": "02:00:00:00:00:01"}, "MTU=1300;MAC=02:00:00:00:00:02",
                            {"mac": "02:00:00:00:00:03"}))
    assert (t.mtu, t.mac) == (1300, "02:00:00:00:00:03")


def test_ifname_placeholder_and_slash_form_resolve_to_the_same_sysctl():
    t = config.load(request({"sysctl": {"net/ipv4/conf/IFNAME/arp_notify": 1}}, ifname="net1.5"))
    (item,) = t.sysctls
    assert item.key == "net.ipv4.conf.IFNAME.arp_notify"
    assert item.parts == ("net", "ipv4", "conf", "net1.5", "arp_notify")
    assert item.value == "1"


def test_args_sysctl_needs_the_allow_list():
    with pytest.raises(CNIError) as err:
        config.load(request({}, "SYSCTL.net.core.somaxconn=512"))
    assert err.value.code == Code.INVALID_CONFIG and "not in allowedSysctls" in err.value.details
    t = config.load(request({"allowedSysctls": ["net.core.*"]}, "SYSCTL.net.core.somaxconn=512"))
    assert [(s.key, s.value) for s in t.sysctls] == [("net.core.somaxconn", "512")]


def test_args_sysctl_overrides_the_config_value_of_the_same_key():
    t = config.load(request({"sysctl": {"net.core.somaxconn": "100"}, "allowedSysctls": ["net.core.somaxconn"]},
                            "SYSCTL.net/core/somaxconn=200"))
    assert [s.value for s in t.sysctls] == ["200"]


@pytest.mark.parametrize(("conf", "args", "field"), [
    ({"mtu": 10}, "", "network 'net': $.mtu: "),
    ({"mtu": "big"}, "", "network 'net': $.mtu: "),
    ({"mtu": True}, "", "network 'net': $.mtu: "),
    ({"mac": "01:00:00:00:00:01"}, "", "network 'net': $.mac: "),
    ({"mac": "nope"}, "", "network 'net': $.mac: "),
    ({}, "MTU=x", "CNI_ARGS MTU: "),
    ({"sysctl": {"kernel.hostname": "x"}}, "", "network 'net': $.sysctl: 'kernel.hostname': "),
    ({"sysctl": {"net.core..x": "1"}}, "", "network 'net': $.sysctl: 'net.core..x': "),
    ({"sysctl": {"net/core/../../kernel/x": "1"}}, "", "network 'net': $.sysctl: 'net/core/../../kernel/x': "),
    ({"sysctl": {"net.core.somaxconn": "1\n2"}}, "", "network 'net': $.sysctl: 'net.core.somaxconn': "),
    ({"sysctl": ["net.core.somaxconn"]}, "", "network 'net': $.sysctl: "),
    ({"allowedSysctls": "net.*"}, "", "network 'net': $.allowedSysctls: "),
    ({"allowedSysctls": ["net.*"]}, "SYSCTL.kernel.x=1", "CNI_ARGS SYSCTL.kernel.x: "),
])
def test_bad_input_names_the_field(conf, args, field):
    with pytest.raises(CNIError) as err:
        config.load(request(conf, args))
    assert err.value.code == Code.INVALID_CONFIG
    assert err.value.details.startswith(field), err.value.details


def test_the_model_is_the_check_and_null_is_unset():
    t = config.load(request({"mtu": "1400", "mac": "02:AA:00:00:00:01", "dataDir": None, "sysctl": {}}))
    assert (t.mtu, t.mac, t.data_dir, t.sysctls) == (1400, "02:aa:00:00:00:01", config.DEFAULT_DATA_DIR, ())
    assert config.data_dir(request({"dataDir": "/tmp/x", "mtu": "junk"})) == "/tmp/x"  # DEL reads only dataDir
