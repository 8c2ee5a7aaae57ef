"""Exception tree of the converters.

    ConversionError          a pass could not turn its input into its output
    ├── PassOptionsError      a pass was given an option it does not take or a value it refuses
    ├── UnsupportedModelError the input is not a model this pass accepts (wrong format, dynamic shape)
    └── MissingDependencyError a pass needs an optional package (names the extra)
"""

from __future__ import annotations


class ConversionError(Exception):
    """Root of every error a converter or pass raises on purpose."""


class PassOptionsError(ConversionError):
    """A pass was given options it does not take, or values its options model refuses.

    Raised before the pass runs; the message names the pass, each bad option and the valid ones.
    """


class UnsupportedModelError(ConversionError):
    """The input model is not one this pass can take."""


class MissingDependencyError(ConversionError):
    """An optional dependency is needed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python module '{module}', which is not installed; "
            f"install it with: pip install 'edgekit[{extra}]'"
        )
        self.module = module
        self.extra = extra
