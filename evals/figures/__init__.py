"""The README's figures, each run from the project root as `python -m evals.figures.NAME`
(real_people, speech_panel, watermark)."""
