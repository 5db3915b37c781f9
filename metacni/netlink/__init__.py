"""Netlink, the bottom of the tree: one codec, one socket, one send/ack loop.

- :mod:`.core`: the message header, attributes, :class:`~.core.Socket` (``request``,
  ``batch``, ``dump``) and the extended-ack error text;
- :mod:`.rtnl`: rtnetlink messages (links, addresses, routes, neighbours) and :class:`~.rtnl.Rtnl`;
- :mod:`.nftables`: nf_tables messages (``NFT_MSG_*``, ``NFTA_*``), the expression encoder and
  the batch framing of a transaction.

Why an own codec instead of pyroute2, and raw nf_tables batches instead of libnftables:
docs/design/1701-own-netlink-codec.md.
"""
