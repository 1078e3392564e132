"""mailhost: a virtual-domain mail hosting backend that speaks Postfix's language.

The pipeline and the layout of this package are described in docs/design.md.
"""

__version__ = "0.1.0"
