"""A plugin whose module fails to import: the platform must report it by name and run on."""

raise RuntimeError("example plugin is broken on purpose")
