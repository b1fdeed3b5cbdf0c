"""The painting's data: geometry, tiled pixels, layers, the document, its events and its undo history."""
