"""igs-tex: bake PBR material stacks into 2D Gaussians (Image-GS) and decode them back."""

__version__ = "0.1.0"


class IgsError(Exception):
    """A user-facing problem (bad input file, bad option). The CLI prints it as one line, exit code 2."""
