"""The ModelAdapter API reference, `docs/api-reference.md`, rendered from the CRD so that it cannot drift from it.

`python -m docs.apireference > docs/api-reference.md` regenerates it (from the repository root); a test fails
when the file and this rendering disagree. Everything in it is read off `deploy/crds/modeladapter-crd.yaml`
(through `modeladapter.operator.kube.manifests.modeladapter_crd`): the kind's names, its printer columns, and
every field of `metadata`, `spec` and `status` with its type, its rules (required, default, enum, pattern,
bounds, lengths) and its description, depth first, in the order the schema declares them.

It is a documentation tool, not part of the operator: nothing under `operator/` imports it.
"""

from docs.apireference.document import Field, fields, render_reference

__all__ = ["Field", "fields", "render_reference"]
