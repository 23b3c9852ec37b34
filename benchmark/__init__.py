"""A benchmark suite for prompt learning on CLIP-like vision-language models.

Importing this package is cheap: it pulls in neither torch nor open_clip. The heavy parts
(backbone, feature cache, prompt learning) are imported by the code paths that need them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "vlprompt-bench"
ENTRY_POINT_GROUP = "vlprompt_bench"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
