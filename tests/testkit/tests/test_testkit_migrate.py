"""tests/testkit_migrate.py: old test-support imports come out pointing at the new homes, and the
table it works from names modules and files that exist."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "testkit_migrate.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("testkit_migrate", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


migrate = _load()

OLD = '''\
from metacni.testing.netns import Sandbox, netns_path, run
from metacni.testing.fakeapi import FakeAPIServer
from metacni.testing.fakeapi.patch import json_patch
from metacni.testing import golibcni
from metacni.testing import fakeapi, strategies as strat
from metacni_plugins.bridge.testkit import ping
from plugins.bridge.testkit import in_netns
from tests.daemon_support import MODES, Node, load
from tests.meta.conftest import CNI_PATH, MetaNode, Pod
from tests.test_fakeapi import helper
import metacni.testing.traffic as traffic
from daemon_support import rt

def f(node):
    from metacni.testing.daemon import run_shim
    argv = ["python", "-m", "metacni.testing.fakeapi", "--port", "0"]
    n = Node(box=box, name=box.netns("mcnode"), work=Path(work), mode="daemon")
    return n.work / "conf", n.work / "cache"
'''

NEW = '''\
from metacni_testkit.netns import Sandbox, netns_path, run
from metacni.sim.fakeapi import FakeAPIServer
from metacni.sim.fakeapi.patch import json_patch
from metacni_testkit import golibcni
from metacni.sim import fakeapi
from metacni_testkit import strategies as strat
from metacni.sim.traffic import ping
from metacni.sim.traffic import in_netns
from metacni_testkit.nodes import MODES, Node, load
from metacni_testkit.nodes import CNI_PATH, Node as MetaNode, Pod
from tests.sim.test_fakeapi import helper
import metacni.sim.traffic as traffic
from metacni_testkit.nodes import rt

def f(node):
    from metacni_testkit.daemon import run_shim
    argv = ["python", "-m", "metacni.sim.fakeapi", "--port", "0"]
    n = Node(box=box, name=box.netns("mcnode"), root=Path(work), mode="daemon")
    return n.conf_dir, n.root / "cache"
'''


def test_every_old_form_is_rewritten() -> None:
    assert migrate.rewrite(OLD, "tests/daemon/test_x.py") == NEW


def test_rewriting_twice_changes_nothing_more() -> None:
    once = migrate.rewrite(OLD, "tests/daemon/test_x.py")
    assert migrate.rewrite(once, "tests/daemon/test_x.py") == once


def test_node_calls_are_renamed_by_where_the_file_lives() -> None:
    bridge = "pods = node.pod(), node.pod().path\nres = node.run('ADD', conf, pods[0], 'c')\n"
    assert migrate.rewrite(bridge, "plugins/bridge/tests/test_new.py") == (
        "pods = node.pod().path, node.pod().path\nres = node.invoke('ADD', conf, pods[0], 'c')\n")
    meta = "out = node.run('nft', 'list', 'ruleset')\npod = node.pod()\n"
    renamed = "out = node.sh('nft', 'list', 'ruleset')\npod = node.pod()\n"
    assert migrate.rewrite(meta, "tests/meta/test_new.py") == renamed
    assert migrate.rewrite(meta, "tests/engine/test_new.py") == meta


@given(st.text())
def test_text_without_old_names_is_left_alone(text: str) -> None:
    olds = [*migrate.MODULES, "metacni.testing", "daemon_support"]
    if not any(old in text for old in olds):
        assert migrate.rewrite(text, "tests/x.py") == text


def test_every_new_home_exists() -> None:
    for new in set(migrate.MODULES.values()) | set(migrate.PACKAGE_MEMBERS.values()):
        if new in migrate.PENDING:
            continue
        if new.startswith("tests."):
            assert (ROOT / (new.replace(".", "/") + ".py")).is_file(), new
        else:
            assert importlib.util.find_spec(new) is not None, new
    for old, new in migrate.TEST_MOVES.items():
        assert (ROOT / new).is_file(), new
        assert not (ROOT / old).exists(), old


def test_command_line_rewrites_in_place_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "test_old.py"
    path.write_text("from metacni.testing.netns import tag\n")
    check = subprocess.run([sys.executable, str(SCRIPT), "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 1 and check.stdout.strip() == str(path)
    assert path.read_text() == "from metacni.testing.netns import tag\n"
    subprocess.run([sys.executable, str(SCRIPT), str(path)], check=True, capture_output=True)
    assert path.read_text() == "from metacni_testkit.netns import tag\n"
    again = subprocess.run([sys.executable, str(SCRIPT), "--check", str(path)], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == ""
