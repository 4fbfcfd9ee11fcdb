"""A content-addressed on-disk cache of per-example scattering features.

One entry per example, keyed by the scattering config, the example's identity
(synthesis parameters, or the audio file's content hash) and the versions of the
libraries that compute it. Entries are written to a temporary file and renamed,
so concurrent writers (pytest-xdist workers, two CI jobs on a shared volume)
never expose a partial entry and at worst both compute the same value; a
corrupt or truncated entry fails to load, is counted and rebuilt.

Location
    ``--cache-dir``, else ``$PMT_CACHE_DIR``, else ``~/.cache/pmt-validation``
    (``~`` is expanded). The values ``disabled``, ``no``, ``off``, ``0``,
    ``none``, ``false`` and the empty string (any case, surrounding spaces
    ignored) switch the cache off, as ``--no-cache`` does.

Ownership
    The cache marks its folder with a ``.pmt-cache`` file when it creates (or
    adopts an empty) folder, and writes only ``<root>/<namespace>/<2 hex>/<32
    hex>.npz`` under it. It refuses to use a folder that is neither empty, marked,
    nor made of such entries only (``PMT_CACHE_DIR=$HOME`` runs uncached, with a
    warning). :func:`clear_cache` removes entries it recognises and nothing else:
    if the folder holds anything else it removes nothing and names what it found.

Faults
    Any file-system fault (read-only folder, a file where the folder should be,
    permission denied, disk full) turns the cache off for the rest of the run with
    one :class:`CacheWarning` per cache object; the run goes on uncached and the
    cache never raises for it.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmt_core.infra.atomic import write_bytes_atomic
from pmt_core.infra.checks import CheckError

ENV_VAR = "PMT_CACHE_DIR"
#: Values of ``$PMT_CACHE_DIR`` / ``--cache-dir`` that switch the cache off (compared
#: lower-cased and stripped).
DISABLED = frozenset({"disabled", "no", "off", "0", "none", "false", ""})
#: The file that marks a folder as a feature cache.
MARKER = ".pmt-cache"
MARKER_FORMAT = "pmt-feature-cache"

_ENTRY = re.compile(r"[0-9a-f]{32}\.npz")
_ENTRY_TMP = re.compile(r"\.[0-9a-f]{32}\.npz\..+\.tmp")
_SHARD = re.compile(r"[0-9a-f]{2}")
_MARKER_TMP = re.compile(r"\." + re.escape(MARKER) + r"\..+\.tmp")
# Namespaces written by namespace_for: config fingerprint, versions hash, recipe hash.
_FINGERPRINT_NAMESPACE = re.compile(r"[0-9a-f]{16}-[0-9a-f]{8}(-[0-9a-f]{8})?")
# Any namespace a caller may choose: one plain path component (no "..", no "/").
_SAFE_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


class CacheError(CheckError):
    """The cache folder cannot be inspected or cleared (the message says why)."""


class CacheWarning(UserWarning):
    """The feature cache was turned off for this run after a file-system fault."""


def resolve_cache_dir(value: str | os.PathLike | None = None) -> Path | None:
    """Return the cache folder for an explicit ``--cache-dir`` value, or the default.

    Parameters
    ----------
    value : str or path-like, optional
        An explicit folder; one of :data:`DISABLED` (any case) switches the cache
        off. ``None`` falls back to :func:`default_cache_dir`.

    Returns
    -------
    pathlib.Path or None
        The folder (``~`` expanded), or None when the cache is off.
    """
    if value is None:
        return default_cache_dir()
    if str(value).strip().lower() in DISABLED:
        return None
    return Path(value).expanduser()


def default_cache_dir() -> Path | None:
    """Return the cache folder from ``$PMT_CACHE_DIR`` (None when disabled).

    Unset: ``~/.cache/pmt-validation``. Set to ``disabled``, ``no``, ``off``,
    ``0``, ``none``, ``false`` or empty (any case): None, the cache is off. Any
    other value is a folder (``~`` expanded).
    """
    value = os.environ.get(ENV_VAR)
    if value is None:
        return Path.home() / ".cache" / "pmt-validation"
    return resolve_cache_dir(value)


def library_versions() -> dict:
    """Versions of the libraries whose output the cache stores."""
    import kymatio
    import torch

    return {"kymatio": kymatio.__version__, "torch": torch.__version__.split("+")[0],
            "numpy": np.__version__}


def source_digest(modules) -> str:
    """SHA-256 (first 16 hex digits) of the source text of ``modules``, in order.

    What a cache namespace keys code by: editing any of the modules is a miss. A
    package stands for every module in it (its ``.py`` files, sub-packages
    included, by relative path), so that splitting a module into a package keeps
    all of its code in the key.
    """
    import importlib

    digest = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        digest.update(name.encode())
        path = Path(module.__file__)
        if hasattr(module, "__path__"):  # a package: all of its modules
            for part in sorted(path.parent.rglob("*.py")):
                digest.update(part.relative_to(path.parent).as_posix().encode())
                digest.update(part.read_bytes())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def array_digest_update(digest, value) -> None:
    """Feed an array (numpy or torch, any device) to ``digest``: dtype, shape and bytes."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    array = np.ascontiguousarray(value)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.data)


def content_key(*parts) -> str:
    """Key (32 hex digits) of values by their content, in order.

    A torch module counts by its class and every parameter and buffer, byte for
    byte; an array (numpy or torch) by its dtype, shape and bytes; None as itself;
    anything else by its JSON text (keys sorted).
    """
    digest = hashlib.sha256()
    for part in parts:
        if part is None:
            digest.update(b"none")
        elif hasattr(part, "state_dict"):
            digest.update(f"{type(part).__module__}.{type(part).__qualname__}".encode())
            for name, value in part.state_dict().items():
                digest.update(name.encode())
                array_digest_update(digest, value)
        elif isinstance(part, np.ndarray) or hasattr(part, "detach"):
            array_digest_update(digest, part)
        else:
            digest.update(json.dumps(part, sort_keys=True, default=_json_default).encode())
        digest.update(b"|")
    return digest.hexdigest()[:32]


def stored_arrays(cache: FeatureCache | None, key: str, compute, *, valid=None) -> dict:
    """Arrays stored under ``key``, or ``compute()``'s, stored for the next run.

    Parameters
    ----------
    cache : FeatureCache or None
        None computes every time.
    key : str
        :func:`content_key` of everything the arrays depend on (the code included).
    compute : callable
        ``() -> dict of str to array``.
    valid : callable, optional
        ``dict -> bool``: an entry it rejects (an ill-shaped one) is recomputed.

    Returns
    -------
    dict of str to numpy.ndarray
        The same arrays, in the same dtypes, computed or loaded.
    """
    if cache is not None:
        found = cache.get_arrays(key)
        if found is not None and (valid is None or valid(found[0])):
            return found[0]
    arrays = {name: np.asarray(value) for name, value in compute().items()}
    if cache is not None:
        cache.put_arrays(key, arrays, {"format": "pmt-stored-arrays"})
    return arrays


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _short_hash(data) -> str:
    text = json.dumps(data, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# ------------------------------------------------------------------ inventory --


@dataclass
class CacheInventory:
    """What :func:`inspect_cache` found in a cache folder.

    Attributes
    ----------
    folder : pathlib.Path
    exists : bool
    marked : bool
        Whether the folder carries a valid ``.pmt-cache`` marker.
    created_folder : bool
        Whether the marker says the cache created the folder (then clearing
        removes the folder itself too).
    namespaces : dict
        ``{namespace: (entries, bytes)}`` of the recognised namespaces.
    temporaries : list of pathlib.Path
        Leftover temporary files of interrupted writes (removed by clearing).
    foreign : list of pathlib.Path
        Everything that is not a cache entry (clearing refuses while any exists).
    """

    folder: Path
    exists: bool = False
    marked: bool = False
    created_folder: bool = False
    namespaces: dict = field(default_factory=dict)
    temporaries: list = field(default_factory=list)
    foreign: list = field(default_factory=list)

    @property
    def entries(self) -> int:
        """Number of cache entries."""
        return sum(n for n, _ in self.namespaces.values())

    @property
    def bytes(self) -> int:
        """Total size of the entries."""
        return sum(b for _, b in self.namespaces.values())

    def describe_foreign(self, limit: int = 3) -> str:
        """Name the first foreign items (relative to the folder) and their count."""
        names = [str(p.relative_to(self.folder)) for p in self.foreign[:limit]]
        more = f" and {len(self.foreign) - limit} more" if len(self.foreign) > limit else ""
        return ", ".join(names) + more


def _read_marker(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MARKER_FORMAT else None


def _scan_namespace(folder: Path, inventory: CacheInventory) -> None:
    entries, size = 0, 0
    for shard in sorted(folder.iterdir()):
        if shard.is_symlink() or not shard.is_dir() or not _SHARD.fullmatch(shard.name):
            inventory.foreign.append(shard)
            continue
        for item in sorted(shard.iterdir()):
            regular = item.is_file() and not item.is_symlink()
            if regular and _ENTRY.fullmatch(item.name) and item.name.startswith(shard.name):
                entries += 1
                size += item.stat().st_size
            elif regular and _ENTRY_TMP.fullmatch(item.name):
                inventory.temporaries.append(item)
            else:
                inventory.foreign.append(item)
    inventory.namespaces[folder.name] = (entries, size)


def inspect_cache(root: str | os.PathLike) -> CacheInventory:
    """List what a cache folder holds, without changing anything.

    A marked folder's namespaces may have any plain name; an unmarked one (a
    cache from before markers) is recognised only when every item is a
    fingerprint-named namespace of entries.

    Raises
    ------
    CacheError
        If ``root`` is a file or cannot be listed.
    """
    root = Path(root)
    inventory = CacheInventory(folder=root)
    if not root.exists() and not root.is_symlink():
        return inventory
    inventory.exists = True
    if not root.is_dir():
        raise CacheError(f"cache folder {root} is a file, not a folder; "
                         "point --cache-dir or $PMT_CACHE_DIR at a folder")
    try:
        marker = _read_marker(root / MARKER)
        inventory.marked = marker is not None
        inventory.created_folder = bool(marker and marker.get("created_folder"))
        namespace = _SAFE_NAMESPACE if inventory.marked else _FINGERPRINT_NAMESPACE
        for item in sorted(root.iterdir()):
            if item.name == MARKER and inventory.marked:
                continue
            if _MARKER_TMP.fullmatch(item.name) and item.is_file() and not item.is_symlink():
                inventory.temporaries.append(item)
            elif (not item.is_symlink() and item.is_dir()
                  and namespace.fullmatch(item.name)):
                _scan_namespace(item, inventory)
            else:
                inventory.foreign.append(item)
    except OSError as exc:
        raise CacheError(f"cannot read cache folder {root}: {exc.strerror or exc}") from exc
    return inventory


def clear_cache(root: str | Path | None = None) -> Path | None:
    """Remove the cache's entries from ``root``; return the folder (None when disabled).

    Only recognised entries (and leftover temporary files) are removed, then the
    empty namespace and shard folders, the marker and, if the cache created it,
    the folder itself. If anything else is there, nothing is removed.

    Parameters
    ----------
    root : path-like, optional
        Default :func:`default_cache_dir`.

    Raises
    ------
    CacheError
        If ``root`` is a file, or holds anything that is not a cache entry (the
        message names the first items).
    """
    root = resolve_cache_dir(root) if root is not None else default_cache_dir()
    if root is None:
        return None
    inventory = inspect_cache(root)
    if not inventory.exists:
        return root
    if inventory.foreign:
        kind = "the cache folder" if inventory.marked else "a folder without a cache marker"
        raise CacheError(
            f"not clearing {root}: {kind} holding {len(inventory.foreign)} item(s) that are "
            f"not cache entries ({inventory.describe_foreign()}); nothing removed; move them "
            "out, or point --cache-dir at the cache folder itself")
    try:
        for namespace in inventory.namespaces:
            folder = root / namespace
            for shard in folder.iterdir():
                for item in shard.iterdir():
                    if _ENTRY.fullmatch(item.name) or _ENTRY_TMP.fullmatch(item.name):
                        item.unlink(missing_ok=True)
                _rmdir_if_empty(shard)
            _rmdir_if_empty(folder)
        for item in inventory.temporaries:
            item.unlink(missing_ok=True)
        if inventory.marked:
            (root / MARKER).unlink(missing_ok=True)
            if inventory.created_folder:
                _rmdir_if_empty(root)
    except OSError as exc:
        raise CacheError(f"cannot clear cache folder {root}: {exc.strerror or exc}") from exc
    return root


def _rmdir_if_empty(folder: Path) -> None:
    # rmdir, never rmtree: a file another process writes meanwhile stays.
    try:
        folder.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise


# ----------------------------------------------------------------------- cache --


class FeatureCache:
    """Per-example feature store under ``root/<namespace>/``.

    Parameters
    ----------
    root : path-like
        Cache folder (created, and marked, on first write).
    namespace : str
        Usually :meth:`namespace_for` of the scattering config's fingerprint; one
        plain file name (letters, digits, ``_.+-``).

    Notes
    -----
    On a file-system fault the object turns itself off (``fault`` says why, and
    :meth:`stats` reports it): :meth:`get` then misses and :meth:`put` does
    nothing, after one :class:`CacheWarning`.
    """

    def __init__(self, root: str | Path, namespace: str):
        if not isinstance(namespace, str) or not _SAFE_NAMESPACE.fullmatch(namespace):
            raise CacheError(f"cache namespace must be one plain name (letters, digits, "
                             f"'_.+-'), got {namespace!r}")
        self.root = Path(root).expanduser()
        self.folder = self.root / namespace
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0
        self.fault: str | None = None
        self._state: str | None = None  # None, "readable" (unmarked) or "marked"
        self._warned = False

    @staticmethod
    def namespace_for(config_fingerprint: str, recipe: dict | None = None) -> str:
        """Namespace combining a config fingerprint, the library versions and a recipe.

        Parameters
        ----------
        config_fingerprint : str
            ``ScatteringConfig.fingerprint()``.
        recipe : dict, optional
            How entries are computed, when it changes their values (device kind,
            thread count, a hash of the code): another recipe, another namespace.
        """
        if not isinstance(config_fingerprint, str) or not re.fullmatch(
                r"[A-Za-z0-9_]{1,64}", config_fingerprint):
            raise CacheError(f"config fingerprint must be a short alphanumeric string, got "
                             f"{config_fingerprint!r}")
        namespace = f"{config_fingerprint}-{_short_hash(library_versions())}"
        if recipe:
            namespace += f"-{_short_hash(recipe)}"
        return namespace

    @staticmethod
    def key(identity: dict) -> str:
        """Stable key of an example's identity (JSON-able dict).

        numpy scalars key like the equal Python scalars: a row read with ``.iloc``
        holds ``numpy.int64`` and ``numpy.bool_`` where ``iterrows`` gives ``int``
        and ``bool``, and both must find the same entry.
        """
        text = json.dumps(identity, sort_keys=True, default=_json_default)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    # -- faults --------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.fault = reason
        if not self._warned:
            self._warned = True
            warnings.warn(f"feature cache off for this run: {reason}; computing uncached",
                          CacheWarning, stacklevel=3)

    def _prepare(self, create: bool) -> bool:
        """Whether the folder may be used; on ``create``, make and mark it first.

        The folder is inspected once per object: after that a read costs no more
        than the entry's own ``open``.
        """
        if self.fault is not None:
            return False
        if self._state == "marked" or (self._state == "readable" and not create):
            return True
        root = self.root
        try:
            if not root.exists():
                if not create:
                    return False  # nothing cached yet; created by the first put
                root.mkdir(parents=True, exist_ok=True)
                self._mark(created_folder=True)
            elif not root.is_dir():
                self._fail(f"{root} is a file, not a folder")
                return False
            elif self._state is None and _read_marker(root / MARKER) is None:
                inventory = inspect_cache(root)
                if inventory.foreign:
                    self._fail(f"{root} is not a feature cache (no {MARKER} marker; holds "
                               f"{inventory.describe_foreign()}); use an empty or new folder")
                    return False
                if not create:
                    self._state = "readable"  # an empty folder or a cache from before markers
                    return True
                self._mark(created_folder=False)
            elif self._state == "readable":
                self._mark(created_folder=False)
        except (OSError, CacheError) as exc:
            self._fail(f"cannot use {root}: {getattr(exc, 'strerror', None) or exc}")
            return False
        self._state = "marked"
        return True

    def _mark(self, created_folder: bool) -> None:
        marker = self.root / MARKER
        text = json.dumps({"format": MARKER_FORMAT, "format_version": 1,
                           "created_folder": created_folder,
                           "created_utc": datetime.datetime.now(datetime.timezone.utc)
                           .isoformat()})
        fd, tmp = tempfile.mkstemp(prefix=f".{MARKER}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            try:
                # link, not rename: a marker another process wrote first is kept (it
                # knows whether it created the folder).
                os.link(tmp, marker)
            except FileExistsError:
                pass
            except OSError:
                os.replace(tmp, marker)  # file systems without hard links
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- entries -------------------------------------------------------------------

    def get(self, key: str, shape: tuple[int, int]) -> tuple[np.ndarray, dict] | None:
        """Return ``(values, descriptors)`` or None when absent, unreadable or off."""

        def read(data):
            values = data["values"]
            if values.shape != tuple(shape) or not np.all(np.isfinite(values)):
                raise ValueError(f"bad entry shape {values.shape}")
            return values, json.loads(str(data["descriptors"]))

        return self._read(key, read)

    def _read(self, key: str, read):
        """Return ``read(npz)`` of an entry, or None.

        None when the entry is absent (a miss), damaged (a miss; the entry is
        removed, to be rebuilt) or unreadable for a file-system fault (the cache
        turns off).
        """
        if not self._prepare(create=False):
            self.misses += 1
            return None
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                found = read(data)
        except FileNotFoundError:
            # Absent, or removed by another process (clear_cache, a rebuild) since:
            # a plain miss, not a corrupt entry.
            self.misses += 1
            return None
        except OSError as exc:
            if exc.errno is None:  # numpy's own "cannot interpret" errors: a bad entry
                return self._drop(path)
            # permission denied, a file where a folder should be, I/O error: a fault
            self._fail(f"cannot read {path}: {exc.strerror or exc}")
            self.misses += 1
            return None
        except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt
            return self._drop(path)
        self.hits += 1
        return found

    def _drop(self, path: Path) -> None:
        self.rebuilt += 1
        self.misses += 1
        # A read-only folder keeps the bad entry; the next put replaces it or faults.
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return None

    def put(self, key: str, values: np.ndarray, descriptors: dict) -> None:
        """Store one example's features atomically (nothing when the cache is off)."""
        if not self._prepare(create=True):
            return
        buffer = io.BytesIO()
        np.savez(buffer, values=np.asarray(values, dtype=np.float32),
                 descriptors=np.asarray(json.dumps(descriptors)))
        path = self._path(key)
        try:
            # no fsync: an entry lost in a crash is a miss, a damaged one is rebuilt
            write_bytes_atomic(path, buffer.getvalue(), fsync=False)
        except OSError as exc:
            # disk full, read-only, permission denied, a file in the way
            self._fail(f"cannot write {path}: {exc.strerror or exc}")

    def get_arrays(self, key: str) -> tuple[dict, dict] | None:
        """Return ``(arrays, meta)`` of an entry written by :meth:`put_arrays`, or None.

        The same store and guarantees as :meth:`get`, for entries that are several
        named arrays of any dtype (a trained model's state) with JSON metadata.
        """

        def read(data):
            arrays = {name[len("a:"):]: data[name] for name in data.files
                      if name.startswith("a:")}
            return arrays, json.loads(str(data["__meta__"]))

        return self._read(key, read)

    def put_arrays(self, key: str, arrays: dict, meta: dict) -> None:
        """Store named arrays and JSON metadata atomically (nothing when the cache is off)."""
        if not self._prepare(create=True):
            return
        buffer = io.BytesIO()
        np.savez(buffer, __meta__=np.asarray(json.dumps(meta, default=_json_default)),
                 **{f"a:{name}": np.asarray(value) for name, value in arrays.items()})
        path = self._path(key)
        try:
            write_bytes_atomic(path, buffer.getvalue(), fsync=False)
        except OSError as exc:
            self._fail(f"cannot write {path}: {exc.strerror or exc}")

    def stats(self) -> dict:
        """Hit, miss and rebuild counts of this run (and ``fault`` when it turned off)."""
        out = {"hits": self.hits, "misses": self.misses, "rebuilt": self.rebuilt,
               "folder": str(self.folder)}
        if self.fault is not None:
            out["fault"] = self.fault
        return out
