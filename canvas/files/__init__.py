"""Files in and out: OpenRaster, PSD, PNG/JPEG/WebP, generation parameters text, animations; the limits that keep hostile files harmless."""
