"""User files that extend a registry: `$KCB_METHODS` (compression methods, compressors/) and
`$KCB_PROBES` (probe kinds, probes/) name Python files, os.pathsep-separated, that are imported
once at start-up and register what they define, without editing the project."""
from __future__ import annotations

import importlib.util
import os
import sys


def import_user_files(variable: str) -> list[str]:
    """Import every file named in ``$variable``; the module names made up for them."""
    names = []
    for path in filter(None, os.environ.get(variable, "").split(os.pathsep)):
        if not os.path.isfile(path):
            raise ImportError(f"${variable} names {path!r}, which is not a Python file")
        name = f"kcb_user_{variable.lower()}_{abs(hash(os.path.abspath(path)))}"
        if name in sys.modules:   # already imported (the package was imported twice)
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None:
            raise ImportError(f"${variable} names {path!r}, which Python cannot import")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        names.append(name)
    return names
