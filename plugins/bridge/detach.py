"""DEL: cut the pod's veth off (or delete it), its firewall rules, then release IPAM.

Idempotent by construction: a missing netns, a missing link and a repeated call all end in
the same state. IPAM DEL runs whatever happened to the link, so a lease is never leaked.

Detach synchronously, destroy asynchronously (daemon only). Deleting a veth waits in the
kernel (synchronize_net), most of a DEL's time (figures: bench/README.md). When a link reaper is enabled
(:mod:`metacni.kernel.reaper`: the daemon enables it at start and drains it at shutdown),
DEL does one cheap request instead -- the host end set down, released from the bridge and
marked for reaping -- so the pod is off the bridge before DEL answers and a re-allocated IP
can never be live twice on it, and the reaper deletes the pair in the background. An ADD of
the same attachment waits for that deletion (the host name is derived from the attachment).
A crash before the deletion leaves a marked, detached link, which the reaper's start-up
sweep, the daemon's GC and this plugin's CNI GC delete. Without a reaper (standalone mode,
the CLI, tests) DEL deletes synchronously.
"""

from __future__ import annotations

from logging import getLogger

from metacni.firewall.masq import del_masquerade
from metacni.firewall.spoofcheck import del_spoofcheck
from metacni.kernel import links, netns, reaper
from metacni.netlink.rtnl import rtnl
from metacni.plugin import DEL, CNIError, Request

from .config import BridgeConf
from .naming import host_veth_name

log = getLogger(__name__)


def delete(request: Request, conf: BridgeConf) -> None:
    failure: Exception | None = None
    try:
        _delete_link(request, conf)
    except Exception as exc:  # still release the lease, then report
        log.exception("bridge DEL: removing %s of container %s failed", request.ifname, request.container_id)
        failure = exc
    if conf.mac_spoof_check:
        # Identity only: works with the netns and the veth gone (the reference leaks its chain then).
        try:
            del_spoofcheck(conf.network, request.container_id, request.ifname)
        except Exception as exc:  # still release the lease, then report
            log.exception("bridge DEL: removing the spoof check of container %s failed", request.container_id)
            failure = failure or exc
    if conf.ip_masq:
        # Found by the attachment identity, so this works with the netns and the link gone,
        # where the reference bridge leaks its CNI-<hash> chain.
        del_masquerade(conf.network, request.container_id, request.ifname, backend=conf.ip_masq_backend)
    if conf.has_ipam:
        request.ipam(DEL)
    if failure is not None:
        if isinstance(failure, CNIError):
            raise failure
        raise RuntimeError(f"deleting {request.ifname} in {request.netns}: {failure}") from failure


def _delete_link(request: Request, conf: BridgeConf) -> None:
    host_name = host_veth_name(conf.network, request.container_id, request.ifname)
    deferred = reaper.current()
    if deferred is not None:
        with rtnl() as ipr:
            if reaper.detach(ipr, host_name):
                deferred.submit(host_name)
                return
        # No host end: the pair is gone already; look for a stray pod end as below.
    if request.netns and netns.exists(request.netns):
        try:
            with netns.enter(request.netns), rtnl() as pod:
                if links.delete_link(pod, request.ifname):
                    return
        except CNIError:
            log.info("bridge DEL: %s is not a usable netns any more; cleaning up on the node", request.netns)
    # No netns (or no interface in it): the pair normally died with the namespace, but an
    # interrupted ADD can leave the host end behind, and its name is deterministic.
    with rtnl() as ipr:
        links.delete_link(ipr, host_name)
