"""Everything needed to run the operator without a cluster: a Kubernetes API emulator and simulated engines.

It is both the test backend and the heart of `modeladapter sandbox`. Nothing here is used by the operator in
a real cluster.
"""
