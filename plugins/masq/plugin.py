"""``masq``: masquerade pod traffic to anything outside its own subnets.

Config: ``nonMasqueradeCIDRs`` (e.g. cluster and service CIDRs) and ``backend``. The same
functions back bridge's ``ipMasq`` (:mod:`metacni.firewall.masq`). DEL needs only the
attachment identity, so it works after the namespace is gone. The hooks are
:class:`metacni.plugin.ChainedFirewallPlugin`'s.
"""

from __future__ import annotations

from metacni.firewall.identity import Attachment
from metacni.firewall.plan import MASQ, IPInterface, MasqPlan
from metacni.plugin import ChainedFirewallPlugin

from .config import MasqConfig


def _plan(keys: MasqConfig, att: Attachment, ips: tuple[IPInterface, ...]) -> MasqPlan:
    return MasqPlan(att, ips, tuple(keys.non_masquerade_cidrs))


_hooks = ChainedFirewallPlugin(MASQ, MasqConfig, "masquerade pod traffic leaving its subnets", _plan)
cni_plugin_info, cni_config_model, cni_add, cni_del, cni_check, cni_gc = _hooks.hooks()
