"""Compositing: flattening a document or a region, and the tile compositor views use."""
