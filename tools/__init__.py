"""Developer tools: dataset generator, built-in model training and evaluation."""
