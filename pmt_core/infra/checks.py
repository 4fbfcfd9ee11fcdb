"""Argument, seed, configuration and path checks with one-line messages for the user.

Every stage checks what enters it here, before any expensive work, so that a bad
value fails at once with a message that names the argument and says how to fix
it, instead of a traceback minutes later or, worse, a silently wrong result.

Errors are :class:`CheckError`, a :class:`ValueError`; the error types of the
stages (``AudioError``, ``DatasetError``, ``CheckpointError``, ``CacheError``)
derive from it, so the command line prints any of them as one line and exits
with status 2, while any other exception stays a traceback (a bug).

The module imports only the standard library and numpy: it is cheap to import
from anywhere (kymatio is imported only by :func:`scattering_path_counts`).
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

#: Seeds must fit every generator the suite seeds: ``numpy.random.seed`` (the
#: legacy ``RandomState``, which some libraries still use) takes ``0 <= seed < 2**32``;
#: ``numpy.random.default_rng`` and ``torch.manual_seed`` take more, but a seed that
#: one generator accepts and another truncates would silently change the run.
SEED_LIMIT = 2**32


class CheckError(ValueError):
    """A value given by the user is invalid; the message says which and how to fix it."""


def one_line(message: object) -> str:
    """Return ``message`` as a single line for stderr and logs.

    Newlines are folded and every other character a terminal would act on (escape
    sequences that clear the screen or forge a line, carriage returns) is shown as
    its Python escape: messages quote file names and class names from the user's data.
    """
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(value, name: str, *, minimum: int | None = None,
              maximum: int | None = None, hint: str = "") -> int:
    """Return ``value`` as an ``int``, refusing non-integers instead of truncating them.

    Parameters
    ----------
    value : int, numpy integer or integral float
        ``3``, ``numpy.int64(3)`` and ``3.0`` are accepted; ``3.5``, ``"3"``,
        ``True`` and NaN are refused (``int(3.5)`` would silently give 3).
    name : str
        Name of the argument, as the user knows it (``"--top"``, ``"batch_size"``).
    minimum, maximum : int, optional
        Inclusive bounds.
    hint : str
        Appended to the message (how to fix it).

    Returns
    -------
    int

    Raises
    ------
    CheckError
    """
    suffix = f"; {hint}" if hint else ""
    if isinstance(value, (bool, np.bool_)):
        raise CheckError(f"{name} must be an integer, got the boolean {value!r}{suffix}")
    try:
        number = operator.index(value)
    except TypeError:
        if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            number = int(value)
        else:
            raise CheckError(f"{name} must be an integer, got {_describe(value)} "
                             f"({type(value).__name__}){suffix}") from None
    if minimum is not None and number < minimum:
        bound = f"at least {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise CheckError(f"{name} must be {bound}, got {number}{suffix}")
    if maximum is not None and number > maximum:
        bound = f"at most {maximum}" if minimum is None else f"in [{minimum}, {maximum}]"
        raise CheckError(f"{name} must be {bound}, got {number}{suffix}")
    return number


def check_positive_int(value, name: str, hint: str = "") -> int:
    """Return ``value`` as an ``int`` of at least 1 (see :func:`check_int`)."""
    return check_int(value, name, minimum=1, hint=hint)


def check_batch_size(batch_size, name: str = "batch_size") -> int:
    """Return a batch size (an ``int`` >= 1); 0 would loop forever or fail deep inside."""
    return check_int(batch_size, name, minimum=1,
                     hint="use 1 on the CPU, 16 on a GPU (examples per transform call)")


def check_seed(seed, name: str = "seed") -> int:
    """Return ``seed`` as an ``int`` in ``[0, 2**32)``, the range every seeded generator takes.

    As :func:`check_int` with those bounds: ``-1`` and ``2**64`` raise
    :class:`CheckError` rather than being wrapped or truncated, which would give
    another run than the one asked for without a word. ``name`` is the argument's
    name (``"--seed"``).
    """
    return check_int(seed, name, minimum=0, maximum=SEED_LIMIT - 1,
                     hint="seeds are integers from 0 to 4294967295 (2**32 - 1)")


def check_sample_rate(sample_rate, name: str = "sample_rate") -> int:
    """Return a sample rate in Hz as a positive ``int``; 44100.7 is refused, not truncated."""
    return check_int(sample_rate, name, minimum=1,
                     hint="a sample rate is a whole number of Hz, e.g. 44100")


def check_finite(value, name: str, *, positive: bool = False,
                 non_negative: bool = False) -> float:
    """Return ``value`` as a finite ``float`` (optionally > 0 or >= 0).

    Raises
    ------
    CheckError
        On a non-number, NaN, inf, or a value outside the asked sign.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating,
                                                                     np.integer)):
        raise CheckError(f"{name} must be a number, got {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise CheckError(f"{name} must be finite, got {number}")
    if positive and number <= 0:
        raise CheckError(f"{name} must be positive, got {number}")
    if non_negative and number < 0:
        raise CheckError(f"{name} must be 0 or more, got {number}")
    return number


def check_unique(values: Iterable, name: str) -> list:
    """Return ``values`` as a list, refusing repeats (naming them).

    Duplicate class names, for instance, would make a name -> probability mapping
    keep one of two outputs and drop the other without a word.
    """
    values = list(values)
    seen, repeated = set(), []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    if repeated:
        raise CheckError(f"{name} must be unique; repeated: {repeated[:10]}")
    return values


# ------------------------------------------------------------ scattering config --

_CONFIG_FIELDS = ("sample_rate", "n_samples", "J", "Q", "T", "min_carrier_hz",
                  "undo_kymatio_scaling")


def _config_fields(config) -> dict:
    if isinstance(config, Mapping):
        fields = dict(config)
    else:
        fields = {key: getattr(config, key) for key in _CONFIG_FIELDS if hasattr(config, key)}
    missing = [key for key in _CONFIG_FIELDS if key not in fields]
    if missing:
        raise CheckError(f"scattering config lacks {missing}")
    return fields


def check_scattering_config(config, *, check_paths: bool = True):
    """Check the values of a scattering configuration; return it unchanged.

    Meant to be called first thing in ``ScatteringConfig.__post_init__`` (and on
    any config read from a file), so that ``T=0`` gives a message naming ``T``
    rather than a ``ZeroDivisionError``, and a config that keeps no path fails at
    once rather than after the filter bank is built.

    Parameters
    ----------
    config : ScatteringConfig or mapping
        Anything with the fields ``sample_rate``, ``n_samples``, ``J``, ``Q``,
        ``T``, ``min_carrier_hz`` and ``undo_kymatio_scaling`` (attributes or
        keys); this module does not import the scattering module.
    check_paths : bool
        Also refuse a config that keeps no first-order path (computed from
        kymatio's filter parameters, no filter bank built; about a millisecond).

    Returns
    -------
    The ``config`` passed in.

    Raises
    ------
    CheckError
        Naming the field: a non-integer or non-positive ``sample_rate``, ``J``,
        ``T`` or ``Q`` entry; ``n_samples`` not a power of two; ``T`` that does
        not divide ``n_samples``; a negative or non-finite ``min_carrier_hz``; a
        non-boolean ``undo_kymatio_scaling``; no path kept.
    """
    fields = _config_fields(config)
    check_sample_rate(fields["sample_rate"], "scattering config sample_rate")
    n_samples = check_int(fields["n_samples"], "scattering config n_samples", minimum=2,
                          hint="a power of two, e.g. 2**18 (5.94 s at 44.1 kHz)")
    if n_samples & (n_samples - 1):
        raise CheckError(f"scattering config n_samples must be a power of two, got {n_samples}")
    check_int(fields["J"], "scattering config J", minimum=1, maximum=64,
              hint="the largest wavelet scale is 2**J samples (13 in the paper)")
    q = fields["Q"]
    if isinstance(q, (str, bytes)) or not isinstance(q, Iterable):
        raise CheckError(f"scattering config Q must be two integers (Q1, Q2), got {q!r}")
    q = tuple(q)
    if len(q) != 2:
        raise CheckError(f"scattering config Q must be two integers (Q1, Q2), got {q!r}")
    for i, value in enumerate(q):
        check_int(value, f"scattering config Q[{i}]", minimum=1, maximum=64,
                  hint="wavelets per octave, (8, 2) in the paper")
    t = check_int(fields["T"], "scattering config T", minimum=1,
                  hint="the averaging window in samples, a power of two dividing n_samples")
    if t > n_samples or n_samples % t:
        raise CheckError(f"scattering config T={t} must divide n_samples={n_samples}")
    check_finite(fields["min_carrier_hz"], "scattering config min_carrier_hz", non_negative=True)
    if not isinstance(fields["undo_kymatio_scaling"], (bool, np.bool_)):
        raise CheckError("scattering config undo_kymatio_scaling must be True or False, got "
                         f"{fields['undo_kymatio_scaling']!r}")
    if check_paths:
        n_first, n_total = scattering_path_counts(fields)
        if n_first == 0:
            raise CheckError(
                f"scattering config keeps no path: min_carrier_hz={fields['min_carrier_hz']} "
                f"is above every first-order centre frequency at sample_rate="
                f"{fields['sample_rate']}; lower min_carrier_hz (32 in the paper)")
    return config


def scattering_path_counts(config) -> tuple[int, int]:
    """Return ``(first-order paths, all paths)`` kept by a scattering configuration.

    The same rule as ``pmt_core.features.scattering`` (orders 1 and 2 whose
    first-order centre frequency is at least ``min_carrier_hz``), computed from
    kymatio's filter parameters without building a filter bank, so that a
    checkpoint or a model can be checked against a config in a millisecond. The
    paper's setting gives ``(74, 1200)``; ``tests/test_hostile.py`` pins the
    agreement with ``path_table``.
    """
    from kymatio.scattering1d.utils import compute_meta_scattering

    fields = _config_fields(config)
    # kymatio 0.3.0's defaults in ScatteringBase1D.build (r_psi, sigma0, alpha)
    meta = compute_meta_scattering(int(fields["J"]), tuple(int(q) for q in fields["Q"]),
                                   int(fields["T"]), 2, math.sqrt(0.5), 0.1, 5.0)
    order = np.asarray(meta["order"])
    carrier = np.asarray(meta["xi"], dtype=float)[:, 0] * float(fields["sample_rate"])
    keep = (order >= 1) & (carrier >= float(fields["min_carrier_hz"]))
    return int(np.sum(keep & (order == 1))), int(np.sum(keep))


# ------------------------------------------------------------------------ paths --


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both resolved, links followed)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_writable_folder(folder: str | os.PathLike, name: str) -> Path:
    """Check that a file can be created in ``folder`` (created later if missing).

    An existing folder is probed by creating and removing a temporary file (what
    permission bits say is not what a read-only mount or root squashing allow); a
    missing one needs its nearest existing ancestor to be a writable folder.

    Raises
    ------
    CheckError
        If a file sits where the folder (or one of its parents) should be, or
        nothing can be written there.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise CheckError(f"{name}: {probe} is a file, not a folder; choose another location")
    if probe == folder:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".pmt-probe.", dir=folder)
        except OSError as exc:
            raise CheckError(f"{name}: cannot write in {folder} ({exc.strerror or exc}); "
                             "choose a writable folder") from exc
        os.close(fd)
        os.unlink(tmp)
    elif not os.access(probe, os.W_OK | os.X_OK):
        raise CheckError(f"{name}: cannot create {folder}: {probe} is not writable; "
                         "choose a writable folder")
    return folder


def check_output_path(path: str | os.PathLike, *, inputs: Iterable = (), name: str = "output",
                      suffix: str | None = None, may_replace=None) -> Path:
    """Check that ``path`` can be written without destroying anything; return it.

    Parameters
    ----------
    path : path-like
        The file about to be written.
    inputs : iterable of path-like
        Files and folders the run reads: the output may not be one of them (the
        same file by any name, hard links included) nor lie inside one.
    name : str
        The argument that gave the path (``"--out"``).
    suffix : str, optional
        Required file name ending (``".png"``), so that a slip such as
        ``--out take1.wav`` cannot replace a recording.
    may_replace : callable, optional
        ``may_replace(path) -> bool`` for an existing file: whether it is an
        earlier output of this kind that may be replaced (e.g. it starts with the
        PNG signature). Without it any existing file may be replaced.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    CheckError
        One line naming the argument and what to do.
    """
    if not str(path).strip():
        raise CheckError(f"{name} is empty; give a file name")
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise CheckError(f"{name} {one_line(path)} names a folder; give a file name")
    try:
        return _check_output_path(path, inputs, name, suffix, may_replace)
    except OSError as exc:  # a name too long, a loop of links, a folder we may not read
        raise CheckError(f"{name} {one_line(path)}: {one_line(exc.strerror or exc)}") from exc


def check_input_file(path: str | os.PathLike, name: str) -> Path:
    """Check that a file argument names a file (it may not exist yet); return it.

    Raises
    ------
    CheckError
        For an empty argument, a folder, or a name the system refuses (too long,
        a loop of links), naming the argument.
    """
    if not str(path).strip():
        raise CheckError(f"{name} is empty; give a file")
    path = Path(path)
    try:
        if path.is_dir():
            raise CheckError(f"{name} {one_line(path)} is a folder; give a file")
        path.exists()
    except OSError as exc:
        raise CheckError(f"{name} {one_line(path)}: {one_line(exc.strerror or exc)}") from exc
    return path


def _check_output_path(path: Path, inputs, name, suffix, may_replace) -> Path:
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        if _same_file(path, source) or path.resolve() == source.resolve():
            raise CheckError(f"{name} {path} is an input of this run; writing it would "
                             f"destroy {source}; choose another name")
        if source.is_dir() and is_within(path, source):
            raise CheckError(f"{name} {path} lies inside the input folder {source}; "
                             "write the output elsewhere")
    if suffix is not None and not path.name.lower().endswith(suffix):
        raise CheckError(f"{name} {path} must end in {suffix}; give a file name such as "
                         f"{path.with_name(path.stem + suffix).name}")
    if path.is_dir():
        raise CheckError(f"{name} {path} is a folder; give a file name")
    if path.exists() and may_replace is not None and not may_replace(path):
        raise CheckError(f"{name} {path} exists and is not an earlier output of this kind; "
                         "refusing to overwrite it; choose another name")
    check_writable_folder(path.parent if str(path.parent) else Path("."), name)
    return path


def printable(text: object) -> str:
    r"""Return ``text`` with every character a terminal would act on shown as its escape.

    File names and class names come from the user's data: a name holding
    ``"\x1b[2J"`` would clear the screen, a ``"\r"`` would overwrite the line.
    Printable text (accents included) is returned unchanged.

    Parameters
    ----------
    text : object
        Converted with ``str``.

    Returns
    -------
    str
        ``text`` if it is printable, else each non-printable character replaced by
        its Python escape (``\x1b``, ``\n``, ``\udc80``), without quotes.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
