"""The errors models/ raises for its callers (the CLI, the app, the flows) to show as one line: each
message names the file and what is wrong with it."""

from __future__ import annotations


class RenderError(RuntimeError):
    """Input (speech, target, models) that cannot become a video; the message names the file and what."""


class CheckpointError(ValueError):
    """A checkpoint or artifact file that cannot be read (truncated, corrupt, not a checkpoint, of an
    older format); the message names the file and, for an artifact, the stage that remakes it."""


class AdaptError(ValueError):
    """A clip that cannot become an adapted target (missing, not a video, no audio, too short, too few
    frames with a face) or a name that cannot be registered; the message names the input and the problem."""
