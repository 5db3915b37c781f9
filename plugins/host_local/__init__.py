"""The in-tree ``host-local`` IPAM plugin, on-disk compatible with the reference binary."""
