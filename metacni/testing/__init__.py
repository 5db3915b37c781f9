"""Test support shipped with the package: namespace fixtures and helpers used by tests/,
plugins/*/tests, e2e/ and the demo. Nothing here is imported on a CNI call path."""
