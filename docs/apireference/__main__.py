"""`python -m docs.apireference > docs/api-reference.md`."""

from docs.apireference.document import render_reference

print(render_reference(), end="")
