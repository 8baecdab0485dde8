"""WikiText-2 raw test (``wiki.test.raw``): where it is, its verified bytes, and its download.
Perplexity (probes/perplexity.py) scores the file; calibrated compressors (Wanda, SparseGPT,
GPTQ: compressors/calibration.py) take a slice of it. Standard library only.

    data, sha256 = read_verified()               # $KCB_WIKITEXT (the file or its folder), else
                                                 # ../shared/data/wikitext-2/wiki.test.raw
    python -m probes.perplexity download DIR     # fetch + verify, then KCB_WIKITEXT=DIR
"""
from __future__ import annotations

import hashlib
import io
import os
import urllib.request
import zipfile
from pathlib import Path

from probes.storage import atomic_write

ENV_VAR = "KCB_WIKITEXT"
SHA256 = "4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c"   # wiki.test.raw
URL = "https://wikitext.smerity.com/wikitext-2-raw-v1.zip"   # the authors' release
MEMBER = "wikitext-2-raw/wiki.test.raw"
DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"
FETCH = "`python -m probes.perplexity download DIR`"


class WikiTextError(RuntimeError):
    """The WikiText-2 test file is missing or is not the published one; the message says why."""


def wikitext_path() -> Path:
    path = Path(os.environ.get(ENV_VAR) or DEFAULT).expanduser()
    if path.is_dir():
        path = path / "wiki.test.raw"
    if not path.is_file():
        raise WikiTextError(f"WikiText-2 test file not found at {path}: set {ENV_VAR} to "
                            f"wiki.test.raw (or its folder), or fetch it with {FETCH}")
    return path


def read_verified(path: Path | None = None) -> tuple[bytes, str]:
    """(bytes, sha256) of the test file, refused unless it is the published one."""
    path = path or wikitext_path()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise WikiTextError(f"{path}: sha256 {digest} is not WikiText-2 raw test ({SHA256}); "
                            f"re-download it with {FETCH}")
    return data, digest


def download(folder: Path, url: str | None = None) -> Path:
    """Fetch the WikiText-2 raw release, verify wiki.test.raw, write it atomically into folder."""
    url = url or os.environ.get("KCB_WIKITEXT_URL", URL)
    with urllib.request.urlopen(url, timeout=120) as r:   # noqa: S310
        blob = r.read()
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        data = z.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise WikiTextError(f"{url}: {MEMBER} has sha256 {digest}, expected {SHA256}; "
                            "nothing was written")
    return atomic_write(Path(folder) / "wiki.test.raw", data)
