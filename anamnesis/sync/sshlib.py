"""asyncssh, imported in one place and without the deprecation noise of its own imports.

cryptography 51 deprecated DSA, and asyncssh (2.24.1, the newest) names the DSA classes at
import time, so every `import asyncssh` printed several `CryptographyDeprecationWarning` lines
on a user's terminal that they cannot act on. The filter below hides exactly that warning
category when it is raised from inside asyncssh's own modules; the same warning raised on
behalf of our code, or any other warning, still shows. Every module that needs asyncssh
imports it from here.
"""

from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning

warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=r"asyncssh(\.|$)")

import asyncssh  # noqa: E402  (after the filter, on purpose)

__all__ = ["asyncssh"]
