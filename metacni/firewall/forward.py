"""Accept forwarded traffic to and from a pod's addresses (nodes with FORWARD policy DROP), on
both backends side by side (:data:`FEATURE`, a :class:`.protocol.Feature`).

nftables (table ``inet metacni_forward``): ``forward`` looks source and destination up in
``pods4``/``pods6`` whose elements jump to the attachment's ``accept-<tag>``; the same
accepts go at the top of any foreign forward base chain that drops (a drop in any nftables
base chain is final). iptables (filter): ``CNI-FORWARD``, jumped to from the top of
``FORWARD``, as the reference firewall plugin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .identity import Attachment
from .nftrules import POD_MAPS, Wanted, chain, match, payload, pod_key, proto, vmap
from .plan import FORWARD, ForwardPlan, IPInterface
from .xtables import Layout, Spec, comment

if TYPE_CHECKING:
    from typing import Any

    from .ipt import Session
    from .nftrules import Cmd, Key
    from .protocol import Feature

CNI_FORWARD = "CNI-FORWARD"
_FAMILY_VERSION = {"ip": 4, "ip6": 6}


def _accept_exprs(ip: IPInterface) -> list[list[Cmd]]:
    return [[match(payload(proto(ip.version), f), str(ip.ip)), {"accept": None}] for f in ("saddr", "daddr")]


class Forward:
    """:class:`.protocol.Feature` of :class:`ForwardPlan`."""

    kind: str = FORWARD
    nft_table: str = "metacni_forward"
    nft_roles: tuple[str, ...] = ("accept-",)
    nft_probe: str = "forward"
    nft_foreign: bool = True
    ipt_table: str = "filter"
    ipt_shared: tuple[str, ...] = (CNI_FORWARD,)
    ipt_rule_chains: tuple[str, ...] = (CNI_FORWARD,)

    # ------------------------------------------------------------------ nftables
    def nft_maps(self) -> list[tuple[str, Any]]:
        return POD_MAPS

    def nft_skeleton(self) -> list[tuple[Cmd, list[list[Cmd]]]]:
        lookup = [[vmap([payload(proto(v), f)], f"pods{v}")] for v in (4, 6) for f in ("saddr", "daddr")]
        return [(chain(self.nft_table, "forward", type="filter", hook="forward", prio=0, policy="accept"), lookup)]

    def nft_wanted(self, plan: ForwardPlan) -> Wanted:
        chain_name = self.nft_roles[0] + plan.attachment.tag
        out = Wanted()
        for ip in plan.addresses:
            for exprs in _accept_exprs(ip):
                out.put(chain_name, exprs, (f"pods{ip.version}", str(ip.ip)))
        return out

    def nft_key(self, chain_name: str, exprs: list[Cmd]) -> tuple[str, Key] | None:
        return pod_key(exprs)

    def nft_raw(self, plan: ForwardPlan) -> bool:
        return True

    def nft_accepts(self, plan: ForwardPlan, family: str) -> list[list[Cmd]]:
        version = _FAMILY_VERSION.get(family)  # an inet chain takes both
        return [exprs for ip in plan.addresses if version in (None, ip.version) for exprs in _accept_exprs(ip)]

    # ------------------------------------------------------------------ iptables
    def ipt_validate(self, plan: ForwardPlan) -> None:
        pass

    def ipt_layout(self, plan: ForwardPlan, version: int) -> Layout:
        ips = [ip for ip in plan.addresses if ip.version == version]
        out = Layout()
        if not ips:
            return out
        text = plan.attachment.comment(FORWARD)
        out.chains.append(("filter", CNI_FORWARD))
        out.shared.append(Spec("filter", "FORWARD", [*comment("CNI firewall plugin rules"), "-j", CNI_FORWARD],
                               insert=True))
        for ip in ips:
            out.owned.append(Spec("filter", CNI_FORWARD, ["-s", str(ip.ip), *comment(text), "-j", "ACCEPT"]))
            out.owned.append(Spec("filter", CNI_FORWARD, ["-d", str(ip.ip), *comment(text), "-j", "ACCEPT"]))
        return out

    def ipt_chains(self, attachment: Attachment) -> set[str]:
        return set()

    def ipt_drop_shared(self, session: Session) -> None:
        session.drop_chain_if_empty("filter", CNI_FORWARD)

    def ipt_ours(self, names: Iterable[str], strict: bool) -> bool:
        return CNI_FORWARD in names


FEATURE = Forward()
if TYPE_CHECKING:
    _conforms: Feature[ForwardPlan] = FEATURE
