"""Speed benchmarks, each run from the project root as `python -m benchmarks.NAME` (preprocess, render,
train, watermark) and printing one JSON object; what they measure is in each module's docstring."""
