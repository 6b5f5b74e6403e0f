"""The `modeladapter` command line: argument parsing, settings from flags and environment, dispatch.

The composition root: the only place that wires the operator, the audit commands and the sandbox together.
"""
