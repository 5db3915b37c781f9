"""``iptables_alternative``: the ``iptables`` command's symlink chain names the backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from metacni.firewall.backend import iptables_alternative


@pytest.mark.parametrize(("target", "expected"), [
    ("xtables-nft-multi", "nftables"), ("xtables-legacy-multi", "iptables"), ("xtables-multi", None)])
def test_the_link_chain_names_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          target: str, expected: str | None) -> None:
    """``iptables`` -> relative ``alternatives/iptables`` -> absolute target: each hop is followed
    from the link's own directory, and the first name with ``legacy``/``nft`` decides."""
    bindir, alternatives = tmp_path / "bin", tmp_path / "alternatives"
    bindir.mkdir()
    alternatives.mkdir()
    real = tmp_path / "real" / target
    real.parent.mkdir()
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    (alternatives / "iptables").symlink_to(real)
    (bindir / "iptables").symlink_to(Path("..", "alternatives", "iptables"))
    monkeypatch.setenv("PATH", str(bindir))
    assert iptables_alternative() == expected
