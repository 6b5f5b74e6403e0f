"""One reconcile of one ModelAdapter: observe → plan → decide → write ahead → engine calls → outcomes → publish.

The planning and deciding are `modeladapter.fsm`'s (pure); this package reads the world, makes the engine
calls, appends to the event log and publishes status and endpoints. It never imports the controller runtime
or the CLI (an import-linter contract): it is driven the same way by the controller's workers and by the
fast tests in `tests/reconcile/`.
"""
