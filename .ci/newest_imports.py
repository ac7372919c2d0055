"""Import every module of the package, as a user's fresh install would, and say what broke.

Run by .ci/check-newest inside a scratch venv holding the newest releases pyproject.toml allows
(no CI pins). A warning raised from our own code counts as a break; a warning a user would see
at Python's default settings (anything but a library's DeprecationWarning) is reported too.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback
import warnings

warnings.simplefilter("default")
warnings.filterwarnings("error", module=r"anamnesis(\.|$)")

import anamnesis  # noqa: E402

broken: list[str] = []
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("default")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    warnings.filterwarnings("error", module=r"anamnesis(\.|$)")
    for module in pkgutil.walk_packages(anamnesis.__path__, "anamnesis."):
        if module.name.endswith(".__main__"):  # runs the CLI when imported
            continue
        try:
            importlib.import_module(module.name)
        except Exception:
            broken.append(f"{module.name}:\n{traceback.format_exc(limit=4)}")
for warning in seen:
    broken.append(f"a user would see: {warning.category.__name__}: {warning.message} ({warning.filename}:{warning.lineno})")

for line in broken:
    print(line)
sys.exit(1 if broken else 0)
