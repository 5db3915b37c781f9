"""In-tree ``portmap``: hostPort -> pod DNAT (see metacni.firewall)."""
