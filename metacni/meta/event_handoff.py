"""Pod events from a standalone CNI call: handed to a detached process that posts them.

The daemon posts events from a background thread (:mod:`.events`). A standalone call (the
``metacni`` console script run by the runtime) exits as soon as it has printed its answer, and
the runtime waits for it, so it must not wait on the API for an event either. When such a
call's ADD fails (``NoNetworkFound``, ``ErrorAddingInterface``) and the node config gives API
access, :func:`post_detached` starts ``python -m metacni.meta.event_handoff`` in a session of
its own, with stdin holding the event and the API settings and stdout/stderr on ``/dev/null``
(an inherited pipe would keep the runtime reading until the poster is done), and returns
without waiting: the ADD pays one fork and exec, never an API round trip. The poster posts
once with the usual timeouts and is killed by ``SIGALRM`` after :data:`DEADLINE` seconds
whatever happens. Successful standalone ADDs post no ``AddedInterface`` (one process per pod
would cost more than the event is worth). Best effort, as in the daemon: a failure is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import sys
from datetime import datetime
from typing import Any

from metacni.spec import safejson
from metacni.spec.errors import CNIError

from .events import MAX_MESSAGE, Event, Recorder
from .kube import KubeSettings

log = logging.getLogger(__name__)
DEADLINE = 30  # seconds a poster may live, imports included
MAX_INPUT = 64 * 1024


def post_detached(conf: dict[str, Any], event: Event) -> bool:
    """Start a detached poster for ``event`` with ``conf``'s API settings; False (logged) when
    there is no API or the process could not be started. Never waits for the API."""
    try:
        settings = KubeSettings.from_conf(conf)
    except CNIError:  # a bad API setting: the ADD itself reports it
        return False
    if not settings.configured:
        return False
    payload = json.dumps({"settings": dataclasses.asdict(settings), "event": {
        "namespace": event.namespace, "pod": event.pod, "uid": event.uid, "type": event.type,
        "reason": event.reason, "message": event.message[:MAX_MESSAGE], "at": event.at.isoformat()}}).encode()
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True, cwd="/")
        assert proc.stdin is not None
        with proc.stdin:
            proc.stdin.write(payload)  # a few hundred bytes: the pipe takes them without blocking
    except OSError as exc:
        log.warning("cannot start the event poster for pod %s/%s: %s", event.namespace, event.pod, exc)
        return False
    log.debug("event %s for pod %s/%s handed to process %d", event.reason, event.namespace, event.pod, proc.pid)
    return True


def main() -> int:
    """The poster: one event from stdin, posted once, within :data:`DEADLINE` seconds."""
    signal.alarm(DEADLINE)
    try:
        data = safejson.loads(sys.stdin.buffer.read(MAX_INPUT))
        settings = KubeSettings(**data["settings"])
        raw = data["event"]
        event = Event(raw["namespace"], raw["pod"], raw["uid"], raw["type"], raw["reason"], raw["message"],
                      datetime.fromisoformat(raw["at"]))
    except (ValueError, TypeError, KeyError):
        return 2
    recorder = Recorder(settings)
    try:
        recorder.emit(event)
        recorder.flush(float(DEADLINE))
    finally:
        recorder.close(1.0)
    return 0 if recorder.sent else 1


if __name__ == "__main__":
    sys.exit(main())
