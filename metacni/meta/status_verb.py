"""CNI STATUS (spec 1.1) for the meta plugin: the readiness indicator file and the primary's STATUS."""

from __future__ import annotations

from metacni.engine.request import Request
from metacni.spec.errors import CNIError, Code

from .service import Context, current_primary, indicator_present


def status_check(request: Request) -> None:
    """CNI STATUS (spec 1.1): ready when the readiness indicator file (if configured) exists and
    the primary network's STATUS succeeds; otherwise 50 naming what is not ready (51 is kept
    when that is all the primary reports). A primary below 1.1.0 is not asked, as libcni does
    not send STATUS to it; STATUS for the meta config itself below 1.1.0 never reaches here
    (libcni does not send it and skel refuses it)."""
    ctx = Context(request)
    problems: list[CNIError] = []
    path = ctx.cfg.readiness_indicator_file
    if path is not None and not indicator_present(path):
        problems.append(CNIError(Code.NOT_AVAILABLE, "readiness indicator file missing",
                                 f"readiness indicator file {path} does not exist (is the default network ready?)"))
    try:
        label, primary = current_primary(ctx)
        try:
            ctx.runner.status(primary)
        except CNIError as exc:
            problems.append(CNIError(exc.code, f"primary network not ready: {exc.msg}",
                                     f"primary network {label}: {exc.msg}: {exc.details}" if exc.details
                                     else f"primary network {label}: {exc.msg}"))
    except CNIError as exc:
        problems.append(CNIError(Code.NOT_AVAILABLE, "primary network not ready",
                                 f"primary network: {exc.msg}: {exc.details}"))
    if problems:
        code = Code.LIMITED_CONNECTIVITY if all(p.code == Code.LIMITED_CONNECTIVITY for p in problems) \
            else Code.NOT_AVAILABLE
        raise CNIError(code, problems[0].msg if len(problems) == 1 else "metacni not ready",
                       "; ".join(p.details for p in problems))


