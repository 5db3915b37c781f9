"""Node firewall rules for pod attachments: portmap (hostPort DNAT), masquerade, forwarding.

Two backends sit behind one small interface (:mod:`.backend`): nftables, driven through
libnftables' JSON API in tables of our own, and iptables (legacy x_tables) through
python-iptables. Every rule we install carries the attachment's identity in a comment
(:mod:`.identity`), so DEL and GC find everything from (network, container id, ifname)
alone -- without IPs, port mappings or a namespace.
"""
