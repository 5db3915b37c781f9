"""The engine: plugin registry, the plugin-side dispatcher, and the runtime-side chain runner.

Verb flow::

    runtime --env+stdin--> engine.skel.dispatch --> registry --> plugin hook (in-process)
    metacni exec / meta plugin --> engine.chain --> engine.invoke --+--> plugin hook
                                                                    +--> engine.execplugin (binary)
"""
