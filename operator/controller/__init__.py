"""The controller runtime: informers and routing, the work queue, workers, leader election, probes, metrics and logs.

It turns cluster changes into adapter keys, hands each key to one reconcile at a time
(`modeladapter.operator.reconcile`), and runs the whole as the `modeladapter run` process.
"""
