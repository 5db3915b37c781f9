"""Wire types of the CNI specification. Pure data: no kernel, no I/O beyond parsing."""
