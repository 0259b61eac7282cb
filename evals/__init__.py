"""Acceptance evaluations on the real fixtures beside the project, each run from the project root with
`python -m`: evals.realface (adaptation to real faces), evals.speech (speech -> lips on people never heard);
evals.figures makes the README's figures from them. Each works in folders of its own (.cache/, temporary
ones), never in the workspace's DVC outputs."""
