"""In-tree plugins, installed as the package ``metacni_plugins`` (one sub-package each).

They register through the same ``metacni.plugins`` entry-point group as third-party
plugins (see pyproject.toml), so the in-tree ones prove the public plugin API.
"""
