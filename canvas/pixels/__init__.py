"""Pixel maths with no document: blend modes and their formulas, coverage operations."""
