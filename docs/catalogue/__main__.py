"""`python -m docs.catalogue > docs/events.md`."""

from docs.catalogue.document import render_document

print(render_document(), end="")
