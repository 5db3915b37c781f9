"""Node firewall rules for pod attachments, organised by feature.

- features, each with its nftables and iptables layouts side by side: :mod:`.portmap`
  (hostPort DNAT), :mod:`.masq` (masquerade), :mod:`.forward` (accept forwarded traffic);
  :mod:`.spoofcheck` (bridge MAC spoof check, nftables only);
- the interface a feature implements and the one a backend implements: :mod:`.protocol`;
  the lookup from a kind to its feature: :mod:`.feature`; plans and input parsers: :mod:`.plan`;
- the engines that own tables, chains, maps, per-attachment ownership and locking:
  :mod:`.nft` (nftables: raw nf_tables batches through :mod:`metacni.netlink.nftables`,
  libnftables JSON for the rest, :mod:`.libnft` its ctypes binding and per-netns pool) and
  :mod:`.ipt` (iptables-legacy through python-iptables, imported only if used);
- backend choice and the public verbs: :mod:`.backend`.

Every rule we install carries the attachment's identity in a comment (:mod:`.identity`), so
DEL and GC find everything from (network, container id, ifname) alone -- without IPs, port
mappings or a namespace.
"""
