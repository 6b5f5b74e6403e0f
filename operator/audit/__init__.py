"""The audit product: read-only queries over the event log (`history`, `events`, `replay`, `verify`, `stuck`,
`stats`) and how their answers are rendered. It never imports the reconcile or the controller (an
import-linter contract): what it says comes from the log alone, or the log and the cluster for `verify`.
"""
