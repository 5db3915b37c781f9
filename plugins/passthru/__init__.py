"""In-tree ``passthru``: the head of Multus' auxiliary CNI chain (``auxiliaryCNIChainName``)."""
