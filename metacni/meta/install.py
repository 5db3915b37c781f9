"""Node installation: ``00-metacni.conf`` and the ``metacni`` executable.

The config is generated from the primary (lexically first other config in the conf dir) and
written atomically; it is never empty, never points at itself (Multus #1108, #1155) and is
only rewritten when its content changes. The executable is installed by rename, so a runtime
executing the old one never sees "text file busy" (Multus #1221).

The node kubeconfig (:func:`write_kubeconfig`) is what a standalone call (the shim ran the
call in-process because the daemon was down) authenticates with: the service account's token
and CA, inlined, in JSON (the ``kubernetes`` client reads it like any kubeconfig).

Importable without ``kubernetes``: the node daemon calls :func:`write_node_config` on every
conf-dir change and :func:`write_kubeconfig` when the service-account token rotates.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metacni.engine.cache import atomic_write
from metacni.spec import versions
from metacni.spec.errors import CNIError, Code

from .conf_dir import candidate_files, is_meta_config, load_file
from .config import DEFAULT_BIN_DIR, DEFAULT_CNI_DIR, NODE_CONFIG_NAME
from .kube import SA_DIR
from .trust import META_TYPE

POD_ANNOTATIONS_CAP = "io.kubernetes.cri.pod-annotations"
#: Where the node kubeconfig lives when :func:`write_kubeconfig` is given the conf dir.
KUBECONFIG_SUBPATH = "metacni.d/metacni.kubeconfig"


class NoPrimaryNetwork(CNIError):
    def __init__(self, details: str) -> None:
        super().__init__(Code.TRY_AGAIN_LATER, "no primary network configuration", details)


def find_primary(conf_dir: str | os.PathLike[str], own_file: str = NODE_CONFIG_NAME) -> Path:
    """The lexically first valid .conf/.conflist/.json that is not a metacni config."""
    problems = []
    for path in candidate_files(conf_dir, own_file):
        try:
            load_file(path)
        except CNIError as exc:
            problems.append(f"{path.name}: {exc.details or exc.msg}")
            continue
        return path
    detail = f"; skipped: {'; '.join(problems)}" if problems else ""
    raise NoPrimaryNetwork(f"no usable network configuration other than metacni's in {conf_dir}{detail}")


def primary_capabilities(path: Path) -> dict[str, bool]:
    """Union of the capabilities enabled in the primary's plugins."""
    caps: dict[str, bool] = {}
    for plugin in load_file(path).plugins:
        for name, enabled in (plugin.get("capabilities") or {}).items():
            if enabled is True:
                caps[name] = True
    return caps


def node_config(conf_dir: str | os.PathLike[str], *, primary: str | os.PathLike[str] | None = None,
                cni_version: str | None = None, host_conf_dir: str | os.PathLike[str] | None = None,
                kubeconfig: str = "", name: str = "metacni-network",
                cni_dir: str | os.PathLike[str] = DEFAULT_CNI_DIR, bin_dir: str | os.PathLike[str] = DEFAULT_BIN_DIR,
                extra: dict[str, Any] | None = None, file_name: str = NODE_CONFIG_NAME) -> dict[str, Any]:
    """The ``00-metacni.conf`` object. ``host_conf_dir`` is the conf dir as the runtime sees it
    (the daemon sees it under e.g. /host/etc/cni/net.d); paths in the output use it."""
    conf_dir = Path(conf_dir).absolute()  # a relative --conf-dir must not be applied twice
    seen_dir = Path(host_conf_dir) if host_conf_dir else conf_dir
    path = Path(primary) if primary else find_primary(conf_dir, file_name)
    if not path.is_absolute():
        path = conf_dir / path
    if path.name == file_name or is_meta_config(path, file_name):
        raise CNIError(Code.INVALID_CONFIG, "invalid primary network", f"{path} is a metacni configuration")
    net = load_file(path)
    version = cni_version or net.cni_version
    if not versions.is_known(version):
        raise CNIError(Code.INCOMPATIBLE_VERSION, "incompatible CNI versions", f"cniVersion {version!r}")
    if versions.at_least(version, "0.4.0") and not versions.at_least(net.cni_version, "0.4.0"):
        raise CNIError(Code.INCOMPATIBLE_VERSION, "primary network too old",
                       f"{path.name} has cniVersion {net.cni_version}; metacni at {version} would send it "
                       "CHECK, which it does not support (Multus #737). Leave --cni-version unset (metacni "
                       f"then speaks {net.cni_version}, as the primary), or raise the primary's cniVersion "
                       "to 0.4.0 or later if its plugins support it (Multus' forceCNIVersion rewrites it)")
    capabilities = primary_capabilities(path)
    capabilities[POD_ANNOTATIONS_CAP] = True
    conf: dict[str, Any] = {
        "cniVersion": version,
        "name": name,
        "type": META_TYPE,
        "confDir": str(seen_dir),
        "cniDir": str(cni_dir),
        "binDir": str(bin_dir),
        "clusterNetwork": str(seen_dir / path.relative_to(conf_dir)) if path.is_relative_to(conf_dir)
        else str(path),
        "capabilities": dict(sorted(capabilities.items())),
    }
    if kubeconfig:
        conf["kubeconfig"] = kubeconfig
    for key, value in (extra or {}).items():
        if key not in ("type", "clusterNetwork", "capabilities"):
            conf[key] = value
    return conf


def write_node_config(conf_dir: str | os.PathLike[str], *, file_name: str = NODE_CONFIG_NAME, **options: Any) -> Path:
    """Generate and atomically write ``<conf_dir>/00-metacni.conf``; returns its path.

    Raises (and leaves any existing file untouched) when no primary exists or it is invalid.
    Unchanged content is not rewritten. ``options`` are :func:`node_config`'s keywords.
    """
    conf = node_config(conf_dir, file_name=file_name, **options)
    data = (json.dumps(conf, indent=2) + "\n").encode()
    if not data.strip() or json.loads(data).get("type") != META_TYPE:  # belt and braces: never empty
        raise CNIError(Code.INTERNAL, "refusing to write an invalid metacni config", repr(data[:80]))
    target = Path(conf_dir) / file_name
    try:
        if target.read_bytes() == data:
            return target
    except OSError:
        pass
    atomic_write(target, data, mode=0o644, dir_mode=0o755)
    return target


#: Keys :func:`node_config` derives from the conf dir and the primary on every write.
_DERIVED_KEYS = frozenset({"cniVersion", "type", "confDir", "clusterNetwork", "capabilities"})
#: Keys that hold :func:`node_config` keywords (the rest, but the derived ones, are ``extra``).
_OPTION_KEYS = {"name": "name", "cniDir": "cni_dir", "binDir": "bin_dir", "kubeconfig": "kubeconfig"}


def installed_options(conf_dir: str | os.PathLike[str], file_name: str = NODE_CONFIG_NAME) -> dict[str, Any]:
    """The :func:`write_node_config` keywords an existing node config was written with, so the
    daemon's regeneration keeps what ``metacni install`` chose (the host's paths, the kubeconfig,
    ``--set`` keys) instead of its own container paths; {} when there is no metacni config.
    Not recovered: an explicit ``--primary`` and ``--cni-version`` (both follow the conf dir)."""
    try:
        conf = json.loads((Path(conf_dir) / file_name).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(conf, dict) or conf.get("type") != META_TYPE:
        return {}
    options: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in conf.items():
        if key in _OPTION_KEYS:
            options[_OPTION_KEYS[key]] = value
        elif key not in _DERIVED_KEYS:
            extra[key] = value
    if isinstance(conf.get("confDir"), str):
        options["host_conf_dir"] = conf["confDir"]
    if extra:
        options["extra"] = extra
    return options


def install_binary(source: str | os.PathLike[str], bin_dir: str | os.PathLike[str], name: str = META_TYPE) -> Path:
    """Copy ``source`` to ``<bin_dir>/<name>`` via a temp file and rename.

    The old inode stays intact for processes executing it, so upgrades never hit ETXTBSY.
    """
    target = Path(bin_dir) / name
    atomic_write(target, Path(source).read_bytes(), mode=0o755, dir_mode=0o755)
    return target



class NoServiceAccount(CNIError):
    def __init__(self, details: str) -> None:
        super().__init__(Code.INVALID_ENVIRONMENT, "no in-cluster service account", details)


def kubeconfig_path(conf_dir_or_path: str | os.PathLike[str]) -> Path:
    """An existing directory means the conf dir: ``<dir>/metacni.d/metacni.kubeconfig``."""
    path = Path(conf_dir_or_path)
    return path / KUBECONFIG_SUBPATH if path.is_dir() else path


def service_account_kubeconfig(*, sa_dir: str | os.PathLike[str] = SA_DIR, server: str | None = None,
                               environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A kubeconfig object for this pod's service account: server from KUBERNETES_SERVICE_HOST/PORT
    (or ``server``), CA and token inline. The host cannot read the container's token file, so
    the token is copied, and the file must be rewritten when it rotates (Multus #852)."""
    env = os.environ if environ is None else environ
    if server is None:
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise NoServiceAccount("KUBERNETES_SERVICE_HOST/PORT are not set")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        server = f"https://{host}:{port}"
    sa = Path(sa_dir)
    try:
        token = (sa / "token").read_text(encoding="utf-8").strip()
        ca = (sa / "ca.crt").read_bytes()
    except OSError as exc:
        raise NoServiceAccount(f"{exc.filename}: {exc.strerror}") from None
    if not token:
        raise NoServiceAccount(f"{sa / 'token'} is empty")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca).decode("ascii")}}],
        "users": [{"name": "metacni", "user": {"token": token}}],
        "contexts": [{"name": "metacni-context", "context": {"cluster": "local", "user": "metacni"}}],
        "current-context": "metacni-context",
    }


def write_kubeconfig(conf_dir_or_path: str | os.PathLike[str], *, sa_dir: str | os.PathLike[str] = SA_DIR,
                     server: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Write the node kubeconfig (JSON, mode 0600, a new directory 0700) atomically and durably;
    True when the file changed, False when content and mode were already right (nothing is
    written, so its mtime and inode stay). Raises :class:`NoServiceAccount` and leaves any
    existing file alone when the service account is not readable."""
    target = kubeconfig_path(conf_dir_or_path)
    doc = service_account_kubeconfig(sa_dir=sa_dir, server=server, environ=environ)
    data = (json.dumps(doc, indent=2) + "\n").encode()
    try:
        st = target.stat()
        if st.st_mode & 0o7777 == 0o600 and target.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write(target, data, mode=0o600, dir_mode=0o700, durable=True)
    return True


def remove_node_config(conf_dir: str | os.PathLike[str], file_name: str = NODE_CONFIG_NAME) -> list[Path]:
    """Remove ``<conf_dir>/<file_name>`` if it is a metacni config (``"type": "metacni"``) and the
    node kubeconfig ``metacni install`` may have written; the runtime's next pod then gets the
    primary (the lexically first remaining config). Another CNI's file of that name stays.
    Returns what was removed."""
    removed: list[Path] = []
    target = Path(conf_dir) / file_name
    if _runs_metacni(target):
        target.unlink()
        removed.append(target)
    kubeconfig = Path(conf_dir) / KUBECONFIG_SUBPATH
    if kubeconfig.is_file():
        kubeconfig.unlink()
        removed.append(kubeconfig)
        with contextlib.suppress(OSError):  # only when empty
            kubeconfig.parent.rmdir()
            removed.append(kubeconfig.parent)
    return removed


def _runs_metacni(path: Path) -> bool:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    plugins = data["plugins"] if isinstance(data.get("plugins"), list) else [data]
    return any(isinstance(p, dict) and p.get("type") == META_TYPE for p in plugins)
