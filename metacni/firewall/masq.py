"""Masquerade for pod traffic leaving its own subnets (the masq plugin and the bridge's
``ipMasq``), on both backends side by side (:data:`FEATURE`, a :class:`.protocol.Feature`).

nftables (table ``inet metacni_masq``): ``postrouting`` skips multicast, then looks the
source up in ``pods4``/``pods6`` whose elements jump to the attachment's ``masq-<tag>``.
iptables (nat): the reference ipMasq layout, ``POSTROUTING -s <ip> -j CNI-<hash>``, which
accepts the exempt destinations and masquerades the rest but multicast.

The functions run in the calling thread's network namespace (the node's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from . import backend as _backend
from .identity import Attachment, is_attachment_chain, masq_chain
from .nftrules import MULTICAST, POD_MAPS, Wanted, chain, match, net, payload, pod_key, proto, vmap
from .plan import MASQ, MasqPlan, parse_addresses, parse_cidrs
from .xtables import Layout, Spec, comment

if TYPE_CHECKING:
    from typing import Any

    from .ipt import Session
    from .nftrules import Cmd, Key
    from .protocol import Feature


def add_masquerade(
    network: str,
    container_id: str,
    ifname: str,
    addresses: list[str],
    *,
    backend: str | None = None,
    non_masquerade_cidrs: Sequence[str] = (),
) -> None:
    """Masquerade ``addresses`` (``ip/prefix``) towards anything outside their subnets and
    ``non_masquerade_cidrs``. Replaces the attachment's earlier masquerade rules."""
    _backend.validate_name(backend)
    plan = MasqPlan(
        Attachment(network, container_id, ifname),
        parse_addresses(addresses, "addresses"),
        parse_cidrs(list(non_masquerade_cidrs), "nonMasqueradeCIDRs"),
    )
    _backend.apply(plan, backend)


def del_masquerade(network: str, container_id: str, ifname: str, *, backend: str | None = None) -> None:
    """Remove the attachment's masquerade rules. Idempotent; needs no addresses."""
    _backend.delete(Attachment(network, container_id, ifname), MASQ, backend)


MULTICAST_TEXT = {4: "224.0.0.0/4", 6: "ff00::/8"}


class Masq:
    """:class:`.protocol.Feature` of :class:`MasqPlan`."""

    kind: str = MASQ
    nft_table: str = "metacni_masq"
    nft_roles: tuple[str, ...] = ("masq-",)
    nft_probe: str = "postrouting"
    nft_foreign: bool = False
    ipt_table: str = "nat"
    ipt_shared: tuple[str, ...] = ()
    ipt_rule_chains: tuple[str, ...] = ("POSTROUTING",)

    # ------------------------------------------------------------------ nftables
    def nft_maps(self) -> list[tuple[str, Any]]:
        return POD_MAPS

    def nft_skeleton(self) -> list[tuple[Cmd, list[list[Cmd]]]]:
        skip = [[match(payload(proto(v), "daddr"), net(n)), {"return": None}] for v, n in MULTICAST.items()]
        lookup = [[vmap([payload(proto(v), "saddr")], f"pods{v}")] for v in (4, 6)]
        return [(chain(self.nft_table, "postrouting", type="nat", hook="postrouting", prio=100, policy="accept"),
                 [*skip, *lookup])]

    def nft_wanted(self, plan: MasqPlan) -> Wanted:
        """``ip saddr X ip daddr <exempt> return`` per exempt net, then ``ip saddr X masquerade``.

        One rule per exempt net rather than ``daddr != {a, b}``: an anonymous set per rule makes
        libnftables fetch every such set's elements before each command (figures: bench/README.md).
        """
        chain_name = self.nft_roles[0] + plan.attachment.tag
        out = Wanted()
        for ip in plan.addresses:
            p, elem = proto(ip.version), (f"pods{ip.version}", str(ip.ip))
            src = match(payload(p, "saddr"), str(ip.ip))
            for exempt in plan.exempt_for(ip):
                out.put(chain_name, [src, match(payload(p, "daddr"), net(exempt)), {"return": None}], elem)
            out.put(chain_name, [src, {"masquerade": None}], elem)
        return out

    def nft_key(self, chain_name: str, exprs: list[Cmd]) -> tuple[str, Key] | None:
        return pod_key(exprs)

    def nft_raw(self, plan: MasqPlan) -> bool:
        return True

    def nft_accepts(self, plan: MasqPlan, family: str) -> list[list[Cmd]]:
        return []

    # ------------------------------------------------------------------ iptables
    def ipt_validate(self, plan: MasqPlan) -> None:
        pass

    def ipt_layout(self, plan: MasqPlan, version: int) -> Layout:
        ips = [ip for ip in plan.addresses if ip.version == version]
        out = Layout()
        if not ips:
            return out
        text = plan.attachment.comment(MASQ)
        chain_name = masq_chain(plan.attachment.network, plan.attachment.container_id)
        out.chains.append(("nat", chain_name))
        exempt: list[str] = []
        for ip in ips:
            exempt += [str(n) for n in plan.exempt_for(ip) if str(n) not in exempt]
        out.owned += [Spec("nat", chain_name, ["-d", n, *comment(text), "-j", "ACCEPT"]) for n in exempt]
        out.owned.append(Spec("nat", chain_name, ["!", "-d", MULTICAST_TEXT[version], *comment(text),
                                                  "-j", "MASQUERADE"]))
        out.owned += [Spec("nat", "POSTROUTING", ["-s", str(ip.ip), *comment(text), "-j", chain_name]) for ip in ips]
        return out

    def ipt_chains(self, attachment: Attachment) -> set[str]:
        return {masq_chain(attachment.network, attachment.container_id)}

    def ipt_drop_shared(self, session: Session) -> None:
        pass  # no shared chains

    def ipt_ours(self, names: Iterable[str], strict: bool) -> bool:
        return any(is_attachment_chain(n, ("",)) for n in names)


FEATURE = Masq()
if TYPE_CHECKING:
    _conforms: Feature[MasqPlan] = FEATURE
