"""The undoable commands that change a document (structure, properties, pixels, the document)."""
