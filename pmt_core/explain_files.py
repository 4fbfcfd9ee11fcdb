"""The files of an ``explain`` call: which recordings it reads, which maps it writes.

Everything here runs before the checkpoint is loaded and before the first
recording is scattered, so that a wrong argument costs no minutes: folders are
expanded to their WAV and FLAC files, a recording named twice is refused, and each
map is placed where it replaces no input, no file that is not an earlier map, and
no other recording's map.
"""

from __future__ import annotations

import os
from pathlib import Path

from pmt_core.infra.checks import CheckError, check_input_file, check_output_path

#: Suffix of the default relevance map, appended to the recording's whole name.
OUTPUT_SUFFIX = ".relevance.png"
#: File endings a folder argument is searched for (case-insensitive).
AUDIO_SUFFIXES = (".wav", ".flac")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ExplainError(CheckError, RuntimeError):
    """A recording cannot be explained (the message is meant for the user).

    A :class:`~pmt_core.infra.checks.CheckError` (so a ``ValueError``), and a
    ``RuntimeError`` as it always was.
    """


def default_output(audio_path: str | Path) -> Path:
    """Return the default map of a recording: its whole name plus ``.relevance.png``."""
    audio_path = Path(audio_path)
    return audio_path.with_name(audio_path.name + OUTPUT_SUFFIX)


def is_png(path: Path) -> bool:
    """Whether ``path`` is a PNG file (an earlier map, which a new one may replace)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_PNG_SIGNATURE)) == _PNG_SIGNATURE
    except OSError:
        return False


def check_output(out: str | Path | None, audio_path: str | Path,
                 checkpoint_path: str | Path | None = None) -> Path:
    """Check where the relevance map will go, before any work; return the path.

    Parameters
    ----------
    out : path-like or None
        The ``--out`` argument; None gives :func:`default_output`.
    audio_path, checkpoint_path : path-like
        The run's inputs: the map may not replace either.

    Raises
    ------
    ExplainError
        If the path does not end in ``.png``, is an input, is a folder, lies under
        a file, is an existing file that is not a PNG, or its folder is not
        writable.
    """
    path = default_output(audio_path) if out is None else out
    try:
        return check_output_path(path, inputs=[audio_path, checkpoint_path], name="--out",
                                 suffix=".png", may_replace=is_png)
    except CheckError as exc:
        raise ExplainError(str(exc)) from exc


def expand_inputs(arguments) -> tuple[list[Path], bool]:
    """Turn the AUDIO arguments into the recordings to explain, checking each.

    Parameters
    ----------
    arguments : iterable of path-like
        Files, or folders standing for their WAV and FLAC files (sorted by name,
        regular files only, not searched recursively).

    Returns
    -------
    recordings : list of pathlib.Path
    single : bool
        True when the arguments are exactly one file (not a folder): then ``--out``
        is the map's file name, otherwise a folder for the maps.

    Raises
    ------
    ExplainError
        For an empty argument, a missing file, a folder without WAV or FLAC files
        or that cannot be listed, a name the system refuses, or a recording given
        twice (by any name).
    """
    arguments = list(arguments)
    recordings, given = [], []  # each recording, and the argument that named it
    for argument in arguments:
        if str(argument).strip() and os.path.isdir(argument):
            folder = Path(argument)
            try:
                found = sorted(p for p in folder.iterdir()
                               if p.name.lower().endswith(AUDIO_SUFFIXES) and p.is_file())
            except OSError as exc:
                raise ExplainError(f"AUDIO {folder}: cannot list the folder "
                                   f"({exc.strerror or exc})") from exc
            if not found:
                raise ExplainError(f"AUDIO {folder} is a folder without WAV or FLAC files "
                                   "(its subfolders are not searched); give files or a "
                                   "folder of recordings")
            recordings += found
            given += [f"in the folder {folder}"] * len(found)
            continue
        try:
            path = check_input_file(argument, "AUDIO")
            exists = path.is_file()
        except CheckError as exc:
            raise ExplainError(str(exc)) from exc
        except OSError as exc:
            raise ExplainError(f"AUDIO {path}: {exc.strerror or exc}") from exc
        if not exists:
            raise ExplainError(f"{path}: no such audio file")
        recordings.append(path)
        given.append(f"as {path}")
    seen: dict = {}
    for path, source in zip(recordings, given, strict=True):
        key = _file_key(path)
        if key in seen:
            raise ExplainError(f"AUDIO {path} is given twice ({seen[key]}, and {source}); "
                               "each recording is explained once")
        seen[key] = source
    # one file argument: --out is its map; a folder or several: --out is a folder
    return recordings, len(arguments) == 1 and not os.path.isdir(arguments[0])


def _file_key(path: Path):
    """Identity of an existing file by any name (device and inode, links followed)."""
    try:
        stat = path.stat()
        return stat.st_dev, stat.st_ino
    except OSError:
        return os.path.normcase(os.path.abspath(path))


def plan_outputs(recordings, out: str | Path | None, checkpoint_path: str | Path,
                 single: bool) -> list[Path]:
    """Check where every recording's map goes, before any work; return the paths.

    Parameters
    ----------
    recordings : list of pathlib.Path
        From :func:`expand_inputs`.
    out : path-like or None
        The ``--out`` argument: the map's file name for a ``single`` recording, a
        folder for several (``DIR/NAME.relevance.png``); None puts each map next to
        its recording (:func:`default_output`).
    checkpoint_path : path-like
    single : bool
        As :func:`expand_inputs` returns it.

    Returns
    -------
    list of pathlib.Path
        One map per recording, in the same order.

    Raises
    ------
    ExplainError
        If ``out`` names a ``.png`` or a file for several recordings, two
        recordings would write one map, or a map fails :func:`check_output`
        (it would replace any input, a non-PNG file, or lie where nothing can be
        written).
    """
    if single:
        return [check_output(out, recordings[0], checkpoint_path)]
    if out is None:
        targets = [default_output(r) for r in recordings]
    else:
        if not str(out).strip():
            raise ExplainError("--out is empty; give a folder for the maps")
        folder = Path(out)
        if folder.name.lower().endswith(".png") or folder.is_file():
            raise ExplainError(f"--out {folder}: with several recordings (or a folder) --out "
                               "names a folder for their maps (DIR/NAME.relevance.png), not "
                               "a file")
        targets = [folder / (r.name + OUTPUT_SUFFIX) for r in recordings]
    # One map per recording: the second would silently replace the first.
    owners: dict = {}
    for recording, target in zip(recordings, targets, strict=True):
        key = os.path.normcase(os.path.realpath(target))
        if key in owners:
            raise ExplainError(f"{owners[key]} and {recording} would both write {target}; "
                               "rename one, or explain them in separate calls")
        owners[key] = recording
    # No map may replace any recording of the run (by name or by hard link).
    names = {os.path.normcase(os.path.realpath(r)) for r in recordings}
    files = {_file_key(r) for r in recordings}
    for target in targets:
        if (os.path.normcase(os.path.realpath(target)) in names
                or (target.exists() and _file_key(target) in files)):
            raise ExplainError(f"--out {target} is an input of this run; choose another "
                               "folder")
    return [check_output(t, r, checkpoint_path) for r, t in zip(recordings, targets,
                                                               strict=True)]
