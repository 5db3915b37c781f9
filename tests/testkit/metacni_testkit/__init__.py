"""metacni's test kit: a pytest plugin (entry point ``pytest11``) and the helpers behind it.

Namespace sandboxes (:mod:`.netns`), the node fixture (:mod:`.nodes`), a firewall testbed, daemon
process helpers, hypothesis strategies and the Go libcni oracle. It lives in the test tree and is
installed for tests only (``pip install -e tests/testkit``); nothing under ``metacni/`` imports it.
The fake API server and the traffic probes are the demo's, in :mod:`metacni.sim`.
"""
