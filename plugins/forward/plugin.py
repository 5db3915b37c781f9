"""``forward``: accept forwarded traffic to and from the pod's addresses.

Needed on nodes whose FORWARD policy is DROP (Docker sets it, many hardening guides too).
iptables: rules in ``CNI-FORWARD``, jumped to from the top of ``filter FORWARD``.
nftables: our ``inet metacni_forward`` table, plus the same accepts at the top of any
foreign forward base chain that drops -- a drop in any nftables base chain is final. The
list of such chains is re-read at most every 10 s per netns (``FOREIGN_TTL``): listing
every chain before each ADD would cost time that grows with the pods.
The hooks are :class:`metacni.plugin.ChainedFirewallPlugin`'s.
"""

from __future__ import annotations

from metacni.firewall.plan import FORWARD, ForwardPlan
from metacni.plugin import ChainedFirewallPlugin

from .config import ForwardConfig

_hooks = ChainedFirewallPlugin(FORWARD, ForwardConfig, "accept forwarded pod traffic",
                               lambda keys, att, ips: ForwardPlan(att, ips))
cni_plugin_info, cni_config_model, cni_add, cni_del, cni_check, cni_gc = _hooks.hooks()
