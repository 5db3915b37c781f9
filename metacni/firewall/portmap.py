"""portmap (hostPort DNAT): the configuration -> :class:`PortmapPlan`, and its rules on both
backends side by side (:data:`FEATURE`, a :class:`.protocol.Feature`).

nftables (table ``inet metacni_portmap``): ``prerouting``/``output`` jump to ``hostports`` for
local destinations, which looks the (address, protocol, port) up in verdict maps (``hostip4``,
``hostip6``, ``anyip``) whose elements jump to the attachment's ``dnat-<tag>`` chain; the
``masquerading`` postrouting chain looks the hairpin/SNAT cases up in ``hairpin4``/``6``
leading to ``snat-<tag>``.

iptables (nat): the reference layout, ``CNI-HOSTPORT-DNAT`` (multiport jumps to the
container's ``CNI-DN-<hash>``), ``CNI-HOSTPORT-SETMARK``/``-MASQ`` for SNAT.

The options and their conflicts are checked by the plugin's config model
(``metacni_plugins.portmap.config``); condition tokens are iptables syntax when the first
starts with ``-`` or ``!``, else nft syntax (:mod:`.conditions`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING

from . import conditions
from .backend import IPTABLES
from .identity import Attachment, dnat_chain, is_attachment_chain, snat_chain
from .nftrules import DPORT, L4, Wanted, chain, fib_local, match, net, payload, proto, vmap
from .plan import (
    PORTMAP,
    PortmapPlan,
    attachment_ips,
    bad,
    check_host_ip_families,
    parse_port_mappings,
)
from .xtables import Layout, Spec, comment

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .ipt import Session
    from .nftrules import Cmd, Key
    from .protocol import Feature


def plan(
    attachment: Attachment, runtime_config: Mapping[str, Any], prev_result: Any, *, snat: bool, masq_all: bool,
    mark_bit: int, external_mark_chain: str | None, conditions_v4: tuple[str, ...], conditions_v6: tuple[str, ...],
) -> PortmapPlan:
    """The attachment's plan: the plugin's options, already checked by its config model
    (``metacni_plugins.portmap.config``), with the call's ``portMappings`` and addresses."""
    mappings = parse_port_mappings(runtime_config.get("portMappings"))
    ips = attachment_ips(prev_result, attachment.ifname)
    first4, first6 = ips.first(4), ips.first(6)
    v4 = first4 if isinstance(first4, ipaddress.IPv4Interface) else None
    v6 = first6 if isinstance(first6, ipaddress.IPv6Interface) else None
    if mappings:
        check_host_ip_families(mappings, {ip.version for ip in (v4, v6) if ip is not None})
    return PortmapPlan(
        attachment,
        mappings,
        v4,
        v6,
        snat=snat,
        masq_all=masq_all,
        mark_bit=mark_bit,
        external_mark_chain=external_mark_chain,
        conditions_v4=conditions_v4,
        conditions_v6=conditions_v6,
    )


# ---------------------------------------------------------------------- the rules
TOP_DNAT, SETMARK, HP_MASQ = "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"
MULTIPORT_MAX = 15


def _port(protocol: str, port: int) -> list[str]:
    return ["-p", protocol, "-m", protocol, "--dport", str(port)]


class Portmap:
    """:class:`.protocol.Feature` of :class:`PortmapPlan`."""

    kind: str = PORTMAP
    nft_table: str = "metacni_portmap"
    nft_roles: tuple[str, ...] = ("dnat-", "snat-")
    nft_probe: str = "prerouting"
    nft_foreign: bool = False
    ipt_table: str = "nat"
    ipt_shared: tuple[str, ...] = (TOP_DNAT, SETMARK, HP_MASQ)
    ipt_rule_chains: tuple[str, ...] = (TOP_DNAT,)

    # ------------------------------------------------------------------ nftables
    def nft_maps(self) -> list[tuple[str, Any]]:
        return [
            ("hostip4", ["ipv4_addr", "inet_proto", "inet_service"]),
            ("hostip6", ["ipv6_addr", "inet_proto", "inet_service"]),
            ("anyip", ["nf_proto", "inet_proto", "inet_service"]),
            ("hairpin4", ["ipv4_addr", "inet_proto", "inet_service"]),
            ("hairpin6", ["ipv6_addr", "inet_proto", "inet_service"]),
        ]

    def nft_skeleton(self) -> list[tuple[Cmd, list[list[Cmd]]]]:
        t = self.nft_table
        jump = [fib_local(), {"jump": {"target": "hostports"}}]
        daddr = [[payload(proto(v), "daddr"), L4, DPORT] for v in (4, 6)]
        return [
            (chain(t, "hostports"), [
                [vmap(daddr[0], "hostip4")],
                [vmap(daddr[1], "hostip6")],
                [vmap([{"meta": {"key": "nfproto"}}, L4, DPORT], "anyip")],
            ]),
            (chain(t, "prerouting", type="nat", hook="prerouting", prio=-100, policy="accept"), [jump]),
            (chain(t, "output", type="nat", hook="output", prio=-100, policy="accept"), [jump]),
            (chain(t, "masquerading", type="nat", hook="postrouting", prio=100, policy="accept"), [
                [vmap(daddr[0], "hairpin4")],
                [vmap(daddr[1], "hairpin6")],
            ]),
        ]

    def nft_wanted(self, plan: PortmapPlan) -> Wanted:
        dnat, snat = (prefix + plan.attachment.tag for prefix in self.nft_roles)
        out = Wanted()
        for cip in plan.container_ips():
            v, p = cip.version, proto(cip.version)
            conds_raw = plan.conditions_v4 if v == 4 else plan.conditions_v6
            where = "conditionsV4" if v == 4 else "conditionsV6"
            conds = conditions.nft_matches(conds_raw, where) if conds_raw else []
            for m in plan.mappings_for(v):
                # expr[0] and expr[1] carry the map key; nft_key() reads them back on DEL
                if m.any_host_ip:
                    fam = "ipv4" if v == 4 else "ipv6"
                    head = match({"meta": {"key": "nfproto"}}, fam)
                    elem: tuple[str, Key] = ("anyip", {"concat": [fam, m.protocol, m.host_port]})
                else:
                    head = match(payload(p, "daddr"), str(m.host_ip))
                    elem = (f"hostip{v}", {"concat": [str(m.host_ip), m.protocol, m.host_port]})
                exprs = [
                    head,
                    match(payload(m.protocol, "dport"), m.host_port),
                    *conds,
                    {"dnat": {"family": p, "addr": str(cip.ip), "port": m.container_port}},
                ]
                out.put(dnat, exprs, elem)
                if not plan.snat:
                    continue
                masq = [
                    match(payload(p, "daddr"), str(cip.ip)),
                    match(payload(m.protocol, "dport"), m.container_port),
                    match({"ct": {"key": "status"}}, "dnat", op="in"),
                ]
                hairpin = (f"hairpin{v}", {"concat": [str(cip.ip), m.protocol, m.container_port]})
                if plan.masq_all:
                    out.put(snat, [*masq, {"masquerade": None}], hairpin)
                    continue
                # one rule per source (no anonymous set: see masq.Masq.nft_wanted)
                for src in [net(cip.network), *(["127.0.0.1"] if v == 4 else [])]:
                    out.put(snat, [*masq, match(payload(p, "saddr"), src), {"masquerade": None}], hairpin)
        return out

    def nft_key(self, chain_name: str, exprs: list[Cmd]) -> tuple[str, Key] | None:
        left, right = exprs[0]["match"]["left"], exprs[0]["match"]["right"]
        port = exprs[1].get("match", {})
        protocol = port.get("left", {}).get("payload", {}).get("protocol")
        if "meta" in left:  # nfproto: a mapping on any host IP
            return "anyip", {"concat": [right, protocol, port.get("right")]}
        v = 4 if left["payload"]["protocol"] == "ip" else 6
        m = "hostip" if chain_name.startswith("dnat-") else "hairpin"
        return f"{m}{v}", {"concat": [right, protocol, port.get("right")]}

    def nft_raw(self, plan: PortmapPlan) -> bool:
        return not (plan.conditions_v4 or plan.conditions_v6)  # nft-syntax conditions: libnftables

    def nft_accepts(self, plan: PortmapPlan, family: str) -> list[list[Cmd]]:
        return []

    # ------------------------------------------------------------------ iptables
    def ipt_validate(self, plan: PortmapPlan) -> None:
        for toks, f in ((plan.conditions_v4, "conditionsV4"), (plan.conditions_v6, "conditionsV6")):
            if toks and conditions.syntax(toks) != IPTABLES:
                raise bad(f, "nft syntax with the iptables backend")

    def ipt_layout(self, plan: PortmapPlan, version: int) -> Layout:
        cip = plan.ipv4 if version == 4 else plan.ipv6
        mappings = plan.mappings_for(version)
        out = Layout()
        if cip is None or not mappings:
            return out
        text = plan.attachment.comment(PORTMAP)
        chain_name = dnat_chain(plan.attachment.network, plan.attachment.container_id)
        mark = f"{plan.mark:#x}/{plan.mark:#x}"
        out.chains += [("nat", TOP_DNAT), ("nat", chain_name)]
        for entry in ("PREROUTING", "OUTPUT"):
            out.shared.append(Spec("nat", entry, ["-m", "addrtype", "--dst-type", "LOCAL", "-j", TOP_DNAT]))
        setmark = plan.external_mark_chain or SETMARK
        if plan.snat and not plan.external_mark_chain:
            out.chains += [("nat", SETMARK), ("nat", HP_MASQ)]
            out.shared.append(
                Spec("nat", SETMARK, [*comment("CNI portfwd masquerade mark"), "-j", "MARK", "--set-xmark", mark]))
            out.shared.append(Spec("nat", HP_MASQ, ["-m", "mark", "--mark", mark, "-j", "MASQUERADE"]))
            out.shared.append(
                Spec("nat", "POSTROUTING", [*comment("CNI portfwd requiring masquerade"), "-j", HP_MASQ], insert=True))
        any_src = "0.0.0.0/0" if version == 4 else "::/0"
        for m in mappings:
            dst = _port(m.protocol, m.host_port) + ([] if m.any_host_ip else ["-d", str(m.host_ip)])
            if plan.snat:
                src = any_src if plan.masq_all else str(cip.network)
                out.owned.append(Spec("nat", chain_name, [*dst, "-s", src, *comment(text), "-j", setmark]))
                if version == 4 and not plan.masq_all:
                    out.owned.append(Spec("nat", chain_name, [*dst, "-s", "127.0.0.1", *comment(text), "-j", setmark]))
            dest = f"{cip.ip}:{m.container_port}" if version == 4 else f"[{cip.ip}]:{m.container_port}"
            out.owned.append(Spec("nat", chain_name, [*dst, *comment(text), "-j", "DNAT", "--to-destination", dest]))
        conds = list(plan.conditions_v4 if version == 4 else plan.conditions_v6)
        for protocol in sorted({m.protocol for m in mappings}):
            ports = list(dict.fromkeys(m.host_port for m in mappings if m.protocol == protocol))
            for i in range(0, len(ports), MULTIPORT_MAX):
                chunk = ",".join(str(p) for p in ports[i : i + MULTIPORT_MAX])
                out.owned.append(Spec("nat", TOP_DNAT, ["-p", protocol, *comment(text), "-m", "multiport",
                                                        "--destination-ports", chunk, *conds, "-j", chain_name],
                                      source="conditionsV4" if version == 4 else "conditionsV6"))
        return out

    def ipt_chains(self, attachment: Attachment) -> set[str]:
        # CNI-SN-: the legacy portmap chain, removed if an old version left it
        return {dnat_chain(attachment.network, attachment.container_id),
                snat_chain(attachment.network, attachment.container_id)}

    def ipt_drop_shared(self, session: Session) -> None:
        table = session.table("nat")
        if any(c.name.startswith("CNI-DN-") for c in table.chains):
            return
        if session.drop_chain_if_empty("nat", TOP_DNAT):
            for name in (HP_MASQ, SETMARK):
                if session.has_chain("nat", name):
                    table.flush_entries(name)
                    session.drop_chain_if_empty("nat", name)

    def ipt_ours(self, names: Iterable[str], strict: bool) -> bool:
        names = list(names)
        if TOP_DNAT in names:
            return True
        return not strict and any(is_attachment_chain(n, ("DN-", "SN-")) for n in names)


FEATURE = Portmap()
if TYPE_CHECKING:
    _conforms: Feature[PortmapPlan] = FEATURE
