"""Put the registered raw data sets into the project data directory, verified by sha256.

Resolution of the data directory (:func:`data_dir`)::

    explicit argument  >  $MEMAT_DATA_DIR  >  <project root>/data/raw  >  ~/.cache/memat/data

where the project root is the nearest parent of the current working directory that holds a
``pyproject.toml``. A data set ``name`` lives in ``<data_dir>/<name>/`` with the ``local`` layout of
:mod:`memat.data.sources`.

For every file :func:`ensure_dataset` tries, in order:

1. ``present``: the file is already in the data directory with the registered sha256;
2. ``copied``: a source directory (argument or ``$MEMAT_DATA_SOURCE``, e.g. ``../shared/data``) holds
   ``<source_dir>/<name>/<local>``; it is copied and its sha256 checked;
3. ``downloaded``: fetched from its pinned ``raw.githubusercontent.com`` URL (unless ``offline``).

Every file is written atomically: the bytes go to a temporary file in the destination folder, the
sha256 is checked, and only then is the file moved into place with :func:`os.replace`. A sha256
mismatch raises :class:`ChecksumError` (naming the file, the expected and the actual digest) and
leaves no partial file behind.

The network is reached only through the module attribute :data:`urlopen` (or the ``opener``
argument), so tests can replace it with a fake that returns bytes.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Union

from ..io import atomic_path
from ..paths import find_project_root
from .sources import DataSource, SourceFile, get_source, REGISTRY

ENV_DATA_DIR = "MEMAT_DATA_DIR"
ENV_DATA_SOURCE = "MEMAT_DATA_SOURCE"
FALLBACK_DATA_DIR = Path("~/.cache/memat/data")
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20

#: What an opener returns: the whole content as bytes, or a readable binary stream.
OpenerResult = Union[bytes, bytearray, BinaryIO]
Opener = Callable[[str], OpenerResult]


class FetchError(RuntimeError):
    """A file could not be obtained (no source copy, offline, or a network error)."""


class ChecksumError(ValueError):
    """The bytes of a file do not have the registered sha256."""

    def __init__(self, file: str, expected: str, actual: str, origin: str = ""):
        self.file, self.expected, self.actual, self.origin = file, expected, actual, origin
        where = f" (from {origin})" if origin else ""
        super().__init__(f"sha256 mismatch for {file}{where}: expected {expected}, got {actual}")


def _default_urlopen(url: str) -> BinaryIO:
    """Open ``url`` with :mod:`urllib` (the real network path)."""
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310 (fixed https URLs)


#: The opener used for downloads; replace it (e.g. with ``monkeypatch``) to fake the network.
urlopen: Opener = _default_urlopen


# --------------------------------------------------------------------------- locations
def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """Nearest parent of ``start`` (default: the CWD), itself included, that has a ``pyproject.toml``, else
    ``None`` (then :func:`data_dir` uses the user cache): :func:`memat.paths.find_project_root` without
    requiring ``src/memat``. A function of this module, so that tests can replace it."""
    return find_project_root(start, require_src=False)


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The raw data directory: ``explicit`` > ``$MEMAT_DATA_DIR`` > ``<project>/data/raw`` > ``~/.cache/memat/data``.

    The directory is not created here.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    root = project_root()
    if root is not None:
        return root / "data" / "raw"
    return FALLBACK_DATA_DIR.expanduser()


def source_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local source copy: ``explicit`` > ``$MEMAT_DATA_SOURCE`` > ``None``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_DATA_SOURCE)
    return Path(env).expanduser() if env else None


# --------------------------------------------------------------------------- hashing / atomic writes
def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _chunks(obj: OpenerResult) -> Iterable[bytes]:
    if isinstance(obj, (bytes, bytearray)):
        yield bytes(obj)
        return
    while True:
        chunk = obj.read(_CHUNK)
        if not chunk:
            return
        yield chunk


def write_verified(dest: Path, chunks: Iterable[bytes], expected_sha: str, origin: str = "") -> None:
    """Write ``chunks`` to ``dest`` atomically, only if their sha256 is ``expected_sha``.

    The bytes go to a temporary file in ``dest``'s folder; on a mismatch (or any error) the temporary
    file is removed and ``dest`` is left untouched.
    """
    with atomic_path(dest) as tmp:
        h = hashlib.sha256()
        with open(tmp, "wb") as out:
            for chunk in chunks:
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if actual != expected_sha:
            raise ChecksumError(str(dest), expected_sha, actual, origin)


# --------------------------------------------------------------------------- ensure
@dataclass
class FetchReport:
    """What :func:`fetch_dataset` did: the data set folder and, per local file, its status."""

    name: str
    path: Path
    files: dict[str, str] = field(default_factory=dict)  # local path -> present|copied|downloaded

    def status(self) -> str:
        """One word when every file had the same fate, else e.g. ``"copied 2, present 1"``."""
        counts: dict[str, int] = {}
        for s in self.files.values():
            counts[s] = counts.get(s, 0) + 1
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _ensure_file(
    src: DataSource, f: SourceFile, dest_root: Path, source_root: Path | None, offline: bool, opener: Opener
) -> str:
    dest = dest_root / f.local
    if dest.is_file() and sha256_file(dest) == f.sha256:
        return "present"
    if source_root is not None:
        candidate = source_root / src.name / f.local
        if candidate.is_file():
            with open(candidate, "rb") as fin:
                write_verified(dest, _chunks(fin), f.sha256, origin=str(candidate))
            return "copied"
    if offline:
        where = f" nor in {source_root / src.name}" if source_root is not None else ""
        raise FetchError(
            f"{src.name}: {f.local} is not in {dest_root}{where}, and offline=True forbids downloading it "
            f"from {src.url(f)}"
        )
    url = src.url(f)
    try:
        result = opener(url)
    except Exception as exc:  # network errors of any kind
        raise FetchError(f"{src.name}: cannot download {f.local} from {url}: {exc}") from exc
    try:
        write_verified(dest, _chunks(result), f.sha256, origin=url)
    finally:
        close = getattr(result, "close", None)
        if callable(close):
            close()
    return "downloaded"


def fetch_dataset(
    name: str,
    source_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    offline: bool = False,
    opener: Opener | None = None,
    files: Iterable[str] | None = None,
) -> FetchReport:
    """Make the files of data set ``name`` present and verified; report what was done per file.

    ``files``: the ``local`` paths to handle (default: every file of the data set), so that a loader
    reading one file of a large data set (BMIKE-53 has one file per language) neither copies nor
    downloads the others. An unregistered path raises ``KeyError`` naming the data set.
    """
    src = get_source(name)
    if isinstance(files, str):
        raise TypeError(f"files must be a list of local paths of {name!r}, not the string {files!r}")
    wanted = src.files if files is None else tuple(src.file(local) for local in files)
    dest_root = _resolve_data_dir(data_dir) / name
    source_root = _resolve_source_dir(source_dir)
    use_opener = opener if opener is not None else urlopen
    report = FetchReport(name=name, path=dest_root)
    for f in wanted:
        report.files[f.local] = _ensure_file(src, f, dest_root, source_root, offline, use_opener)
    return report


def ensure_dataset(
    name: str,
    source_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    offline: bool = False,
    opener: Opener | None = None,
    files: Iterable[str] | None = None,
) -> Path:
    """Make data set ``name`` (or only its ``files``) present and verified in the data directory; return its folder.

    ``source_dir`` defaults to ``$MEMAT_DATA_SOURCE`` and ``data_dir`` to :func:`data_dir`.
    Raises :class:`ChecksumError` on a sha256 mismatch and :class:`FetchError` when a file cannot be
    obtained.
    """
    return fetch_dataset(
        name, source_dir=source_dir, data_dir=data_dir, offline=offline, opener=opener, files=files
    ).path


def ensure_all(
    names: Iterable[str] | None = None,
    source_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    offline: bool = False,
    opener: Opener | None = None,
) -> dict[str, Path]:
    """:func:`ensure_dataset` for each name (default: every registered data set)."""
    return {
        n: ensure_dataset(n, source_dir=source_dir, data_dir=data_dir, offline=offline, opener=opener)
        for n in (list(names) if names is not None else list(REGISTRY))
    }


def _resolve_data_dir(explicit: str | os.PathLike | None) -> Path:
    # the module-level function is shadowed by the parameter name inside the public functions
    return data_dir(explicit)


def _resolve_source_dir(explicit: str | os.PathLike | None) -> Path | None:
    return source_dir(explicit)


__all__ = [
    "ChecksumError",
    "FetchError",
    "FetchReport",
    "ENV_DATA_DIR",
    "ENV_DATA_SOURCE",
    "data_dir",
    "source_dir",
    "project_root",
    "sha256_file",
    "write_verified",
    "fetch_dataset",
    "ensure_dataset",
    "ensure_all",
    "urlopen",
]
