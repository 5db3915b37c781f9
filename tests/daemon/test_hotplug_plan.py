"""The diff at the heart of dynamic attachments (metacni.meta.hotplug.plan), property-tested:
unchanged entries are kept (never re-attached), everything else is exactly removed or added."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from metacni.meta.annotations import NetworkSelection
from metacni.meta.delegate_cache import CachedAttachments
from metacni.meta.hotplug import _free_names, plan
from metacni.meta.networks import Delegate
from metacni.spec.config import network_list_from_bytes

NET = network_list_from_bytes(b'{"cniVersion": "1.0.0", "name": "n", "type": "bridge"}', "test")

selections = st.builds(NetworkSelection, name=st.sampled_from(["a", "b", "c"]), namespace=st.just("default"),
                       interface=st.sampled_from([None, "x1", "x2"]),
                       ips=st.sampled_from([None, ["10.1.0.5/24"]]))


def record(sels: list[NetworkSelection]) -> CachedAttachments:
    delegates = [Delegate(label="primary", net=NET, ifname="eth0", primary=True)]
    delegates += [Delegate(label=s.ref, net=NET, ifname=f"net{i + 1}", selection=s) for i, s in enumerate(sels)]
    return CachedAttachments("cid", "/run/netns/x", "default", "web", delegates)


@given(st.lists(selections, max_size=5), st.lists(selections, max_size=5))
def test_plan_is_a_multiset_diff(before: list[NetworkSelection], after: list[NetworkSelection]):
    rec = record(before)
    kept, removed, added = plan(rec, after)
    current = rec.delegates[1:]
    assert sorted(map(id, kept + removed)) == sorted(map(id, current))
    assert len(kept) + len(added) == len(after)
    assert all(d.selection in after for d in kept)
    # applying the plan gives exactly the requested selections (as a multiset)
    result = [d.selection.to_json() for d in kept if d.selection] + [s.to_json() for s in added]
    assert sorted(map(repr, result)) == sorted(repr(s.to_json()) for s in after)


@given(st.lists(selections, max_size=4))
def test_same_annotation_changes_nothing(sels: list[NetworkSelection]):
    _, removed, added = plan(record(sels), list(sels))
    assert removed == [] and added == []


@given(st.sets(st.sampled_from([f"net{i}" for i in range(1, 8)] + ["eth0", "x1"])), st.integers(0, 5))
def test_free_names_are_new_and_lowest(taken: set[str], count: int):
    names = _free_names(set(taken), count)
    assert len(names) == len(set(names)) == count
    assert not set(names) & taken
    assert names == sorted(names, key=lambda n: int(n[3:]))
    lowest = next(i for i in range(1, 100) if f"net{i}" not in taken)
    assert count == 0 or names[0] == f"net{lowest}"
