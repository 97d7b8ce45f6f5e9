"""pytest fixtures for testing a tool against lfafs (docs/testing-your-tool.md).

The plugin lives in lfafs.service.testing (registered as the ``lfafs``
pytest11 plugin); this module keeps ``import lfafs.testing`` working.
"""

from lfafs.service.testing import (
    LfaMount,
    lfafs_mount,
    lfafs_mount_module,
    lfafs_mount_session,
    lfafs_platform,
    start,
    unavailable,
)

__all__ = ["LfaMount", "lfafs_mount", "lfafs_mount_module", "lfafs_mount_session", "lfafs_platform", "start",
           "unavailable"]
