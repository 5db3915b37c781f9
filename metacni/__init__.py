"""metacni: a meta-CNI with in-process plugin chains and a warm node daemon.

Layers, bottom to top (imports only point downwards):

``metacni.spec``      wire types of the CNI spec: versions, errors, configs, results.
``metacni.engine``    plugin registry (pluggy), dispatcher, chain runner, delegate exec, cache.
``metacni.kernel``    netlink helpers (namespaces, links, addresses, routes).
``metacni.firewall``  nftables / iptables backends.
``metacni_plugins``   in-tree plugins (folder ``plugins/``).
``metacni.meta``      the meta plugin: primary + annotated networks.
``metacni.daemon``    warm node daemon; the static binDir shim (shim/, ``metacni.shimbin``) is its client.
``metacni.cli``       the command line.
"""

__version__ = "0.1.0"
