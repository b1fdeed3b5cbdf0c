"""The undoable commands that change a document (structure, properties, pixels, the document,
its size: :mod:`sfumato.canvas.edits.canvas_size`)."""
