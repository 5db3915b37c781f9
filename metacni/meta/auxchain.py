"""Multus' ``auxiliaryCNIChainName``: one more chain, from the node's disk, for every pod.

As Multus' ``CmdAdd`` (pkg/multus/multus.go) does, after the pod's networks are resolved:

- the chain is the conflist ``{"cniVersion": <the meta config's>, "name": <chain name>,
  "plugins": [{"type": "passthru", "name": "passthru-cni"}]}`` loaded as if read from a file in
  the directory of ``clusterNetwork``, so libcni 1.3's subdirectory loading appends the plugins
  of ``<that dir>/<chain name>/*.conf`` (:func:`metacni.spec.config.conflist_from_file_bytes`);
- it is attached only when that directory gave at least one plugin (a missing or empty
  directory: no chain, as Multus);
- it runs last, on interface ``net<index>`` (its position among the delegates, Multus'
  ``getIfname``), is recorded with the other delegates, and so is undone by DEL (first, DEL runs
  in reverse) and checked by CHECK;
- ``clusterNetwork`` must be a path (contain ``/``); otherwise the ADD fails, as Multus'
  ("auxiliary chain used but ClusterNetwork must be a path").

Differences, both refusals (code 7) where Multus logs and silently skips the chain: a chain name
that is not a valid CNI network name, and an unreadable or invalid plugin file in the directory.

The key is node-only (:data:`metacni.meta.trust.NODE_ONLY_KEYS`): the chain comes from the node's
conf dir, never from a NAD.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from metacni.spec.config import conflist_from_file_bytes
from metacni.spec.errors import CNIError, Code

from .config import MetaConfig
from .networks import Delegate

log = logging.getLogger(__name__)
KEY = "auxiliaryCNIChainName"
#: Multus' check of the chain name (``loadSubdirectoryChain``), the CNI spec's network name.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def _refuse(msg: str, details: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, msg, f"{KEY}: {details}")


def chain_dir(cfg: MetaConfig) -> tuple[str, Path] | None:
    """(chain name, the directory holding ``<chain name>/``), or None when the key is unset.
    Raises code 7 for a non-string or invalid name, or a ``clusterNetwork`` that is not a path."""
    name = cfg.raw.get(KEY)
    if name is None or name == "":
        return None
    if not isinstance(name, str) or not _NAME.match(name):
        raise _refuse("invalid auxiliary chain name",
                      f"{name!r} is not a CNI network name (letters, digits, '_', '.', '-'; starting with a "
                      "letter or digit); set it to the name of a subdirectory of the conf dir")
    cluster = cfg.raw.get("clusterNetwork")
    if not isinstance(cluster, str) or "/" not in cluster:
        raise _refuse("auxiliary chain used but clusterNetwork is not a path",
                      f"chain {name!r} is loaded from the directory of clusterNetwork, which must be a file path "
                      f"(Multus' rule), got {cluster!r}; set clusterNetwork to the primary's file, e.g. "
                      f"{str(cfg.conf_dir / '10-primary.conflist')!r}, or remove {KEY}")
    # os.path, not Path: Go's filepath.Dir keeps "a/b" of "a/b/" and cleans "..", as these do
    return name, Path(os.path.normpath(os.path.dirname(cluster)))


def delegate(cfg: MetaConfig, delegates: list[Delegate]) -> Delegate | None:
    """The auxiliary chain as the delegate after ``delegates``, or None (key unset, or no
    plugin in its directory)."""
    found = chain_dir(cfg)
    if found is None:
        return None
    name, base = found
    head = {"cniVersion": cfg.cni_version, "name": name, "plugins": [{"type": "passthru", "name": "passthru-cni"}]}
    try:
        net = conflist_from_file_bytes(json.dumps(head).encode(), base / f"{name}.conflist")
    except CNIError as exc:
        raise _refuse(exc.msg, f"chain {name!r} in {base / name}: {exc.details}") from None
    if len(net.plugins) < 2:
        log.debug("%s %r: no plugin config in %s; no auxiliary chain", KEY, name, base / name)
        return None
    return Delegate(label=name, net=net, ifname=f"net{len(delegates)}")


def append(cfg: MetaConfig, delegates: list[Delegate]) -> list[Delegate]:
    """``delegates`` plus the auxiliary chain, if any (the ADD plan)."""
    aux = delegate(cfg, delegates)
    return [*delegates, aux] if aux is not None else delegates
