"""Painting tools' engines: the brush, flood fill, selections."""
