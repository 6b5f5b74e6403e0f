"""The ModelAdapter resource as the operator reads and writes it: pure functions over plain objects.

* `view` — the typed view of one ModelAdapter object, built once per reconcile;
* `spec` — the spec checked into an `AdapterSpec`, or the first problem, naming the field;
* `status` and `conditions` — the `status` and retry annotations projected from the folded state;
* `pods` — what the operator reads out of a Pod.

Nothing here performs I/O; the reconcile and the audit commands both build on it.
"""
