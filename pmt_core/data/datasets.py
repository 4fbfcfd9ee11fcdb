"""Loading a data set (manifest CSV, the authors' CSV, or a SOL tree) and splitting it.

Every loader returns one row per audio file with at least the columns ``path``
(absolute, or empty for synthetic examples), ``technique`` (one of
:data:`pmt_core.techniques.TECHNIQUES`), ``subset`` (training, validation, test),
``instrument``, ``family``, ``f0_hz`` and ``modulation_rate_hz`` (NaN when
unknown), and ``attrs``: ``source`` ("manifest", "authors_csv" or "sol_tree"),
``path``, ``n_ignored`` and ``ignored`` (relative paths of the files left out,
each with the reason in parentheses where it is not the layout: not a regular
file, a dangling or looping link, unreadable, a name that is not UTF-8).
A data set may hold any subset of the five techniques.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd

from pmt_core.data.split import SUBSETS
from pmt_core.infra.cache import file_digest
from pmt_core.infra.checks import CheckError
from pmt_core.techniques import TECHNIQUES

AUDIO_SUFFIXES = (".wav", ".flac")

#: The 23 original SOL technique folders of SOL-PMT and their class, copied from the
#: authors' ``SOL-0.9HQ-PMT_meta.csv`` (columns ``technique original`` ->
#: ``modulation technique``; every folder maps to exactly one class there). In a bare
#: SOL tree any other folder (ordinario, non-vibrato, staccato, ...) is ignored and
#: counted: the class is never guessed from a substring.
TECHNIQUE_FOLDERS: dict[str, str] = {
    "artificial-harmonic-tremolo": "tremolo",
    "bisbigliando": "bisbigliando",
    "bisbigliando-with-stick": "bisbigliando",
    "double-trill-major-second-up": "trill",
    "double-trill-minor-second-up": "trill",
    "flatterzunge": "flatterzunge",
    "flatterzunge-and-voice-unison": "flatterzunge",
    "flatterzunge-closed": "flatterzunge",
    "flatterzunge-high-register": "flatterzunge",
    "flatterzunge-no-mouthpiece": "flatterzunge",
    "flatterzunge-open": "flatterzunge",
    "flatterzunge-stopped": "flatterzunge",
    "flatterzunge-to-ordinario": "flatterzunge",
    "ordinario-to-flatterzunge": "flatterzunge",
    "ordinario-to-tremolo": "tremolo",
    "sul-ponticello-tremolo": "tremolo",
    "sul-tasto-tremolo": "tremolo",
    "tremolo": "tremolo",
    "tremolo-to-ordinario": "tremolo",
    "tremolo-with-fingertips": "tremolo",
    "trill-major-second-up": "trill",
    "trill-minor-second-up": "trill",
    "vibrato": "vibrato",
}

#: Columns of the authors' CSV (method.md section 6).
AUTHORS_COLUMNS = (
    "instrument family",
    "instrument",
    "technique original",
    "modulation technique",
    "file_name",
    "subset",
)
MANIFEST_REQUIRED = ("path", "technique")
MANIFEST_OPTIONAL_NUMERIC = ("f0_hz", "modulation_rate_hz")

# A SOL note name is its own token in the file name: "Fl-trill-maj2-G#6-mf.wav".
_NOTE_RE = re.compile(r"(?:^|[-_ +])([A-G])(#?)(\d)(?=$|[-_ +.])")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


class DatasetError(CheckError):
    """A data set cannot be loaded (the message names the file, row or folder).

    Missing file, empty folder, bad CSV, unknown name, a file listed twice or
    labelled twice, or unusable numbers.
    """


def f0_from_filename(name: str) -> float:
    """Parse the f0 (Hz, A4 = 440 Hz) from a SOL file name, NaN if it has no note.

    SOL names carry the written note as a dash-separated token, e.g.
    ``Fl-trill-maj2-G#6-mf.wav`` -> G#6 -> 1661.2 Hz (sharps only in SOL). A name
    with no such token, or with several, gives NaN.
    """
    matches = _NOTE_RE.findall(os.path.basename(name))
    if len(matches) != 1:
        return float("nan")
    letter, sharp, octave = matches[0]
    midi = 12 * (int(octave) + 1) + _PITCH_CLASS[letter] + (1 if sharp else 0)
    return float(440.0 * 2.0 ** ((midi - 69) / 12.0))


def load_dataset(path: str | os.PathLike) -> pd.DataFrame:
    """Load a data set description; see the module docstring for the columns.

    Parameters
    ----------
    path : str or os.PathLike
        (a) a manifest CSV with ``path`` (relative to the CSV's folder) and
        ``technique`` columns, optional ``subset``, ``instrument``, ``family``,
        ``f0_hz``, ``modulation_rate_hz``; (b) a CSV in the authors' format, whose
        split is kept exactly; (c) a folder whose root holds one CSV of either kind;
        (d) a bare SOL tree ``Family/Instrument/technique-folder/file.wav|flac``.
        Without a split on disk ``subset`` is empty, and the run's seed makes one
        (:func:`pmt_core.data.split.assign_split`).

    Every file may appear once: the same path twice, or two files with the same
    content (by SHA-256), is an error naming the rows, since it would put one
    recording in both the training and the test split; a file labelled with two
    techniques is named as such. Synthetic rows with the same parameters are
    refused for the same reason.

    Raises
    ------
    DatasetError
        Missing path or audio file, empty folder, CSV without the required columns,
        unknown technique or subset name, a duplicate or contradictory row, or a
        non-numeric, non-positive or infinite ``f0_hz`` / ``modulation_rate_hz``.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        csvs = sorted(p for p in path.glob("*.csv") if _csv_kind(p) is not None)
        if len(csvs) > 1:
            raise DatasetError(
                f"{path}: several data set CSVs at the root: {[p.name for p in csvs]}"
            )
        df = _load_csv(csvs[0]) if csvs else _load_sol_tree(path)
    else:
        df = _load_csv(path)
    df.attrs["path"] = str(path)
    return df


def _csv_kind(csv_path: Path) -> str | None:
    try:
        columns = set(pd.read_csv(csv_path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if set(AUTHORS_COLUMNS) <= columns:
        return "authors_csv"
    if set(MANIFEST_REQUIRED) <= columns:
        return "manifest"
    return None


def _load_csv(csv_path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetError(f"{csv_path}: not a readable CSV ({err})") from err
    kind = _csv_kind(csv_path)
    if kind is None:
        raise DatasetError(
            f"{csv_path}: missing columns; need {list(MANIFEST_REQUIRED)} (manifest) or "
            f"{list(AUTHORS_COLUMNS)} (authors' format); found {list(raw.columns)}"
        )
    if raw.empty:
        raise DatasetError(f"{csv_path}: no rows")
    root = csv_path.parent
    if kind == "authors_csv":
        rel = (
            raw[list(AUTHORS_COLUMNS[:3])].astype(str).agg("/".join, axis=1)
            + "/"
            + raw["file_name"].astype(str)
        )
        df = pd.DataFrame(
            {
                "path": [str(root / r) for r in rel],
                "technique": raw["modulation technique"].astype(str),
                "subset": raw["subset"].astype(str),
                "instrument": raw["instrument"].astype(str),
                "family": raw["instrument family"].astype(str),
                "f0_hz": [f0_from_filename(n) for n in raw["file_name"].astype(str)],
                "modulation_rate_hz": np.nan,
                "technique_original": raw["technique original"].astype(str),
            }
        )
        _check_names(df, csv_path)
        _check_files(df, csv_path)
        _check_duplicates(df, csv_path, _csv_lines(df))
        return _finish(df, "authors_csv", csv_path, [])

    df = raw.copy()
    synthetic = df["path"].isna()
    if synthetic.any() and "seed" not in df.columns:
        rows = list(df.index[synthetic][:5])
        raise DatasetError(f"{csv_path}: empty path in rows {rows} and no synthetic 'seed' column")
    df["path"] = [
        "" if empty else str((root / str(p)).resolve())
        for p, empty in zip(df["path"], synthetic, strict=True)
    ]
    df["technique"] = df["technique"].astype(str)
    for column in ("instrument", "family"):
        df[column] = df[column].fillna("unknown").astype(str) if column in df else "unknown"
    for column in MANIFEST_OPTIONAL_NUMERIC:
        df[column] = _positive_numbers(df, column, csv_path) if column in df else np.nan
    has_split = "subset" in df and df["subset"].notna().all()
    if "subset" in df and df["subset"].notna().any() and not has_split:
        raise DatasetError(f"{csv_path}: column 'subset' is empty for some rows but not all")
    if not has_split:
        df["subset"] = ""
    _check_names(df, csv_path, check_subset=has_split)
    _check_files(df[df["path"] != ""], csv_path)
    _check_duplicates(df, csv_path, _csv_lines(df))
    return _finish(df, "manifest", csv_path, [])


def _unusable(full: Path, name: str) -> str | None:
    """Why a candidate audio file cannot be read (None: it can), without opening it.

    Opening a FIFO blocks and opening a device reads forever: only regular files,
    reached through links that resolve, readable, with a UTF-8 name, are used.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not UTF-8"
    try:
        info = os.stat(full)  # follows links
    except OSError:
        return "dangling or looping link" if os.path.islink(full) else "cannot be read"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if not os.access(full, os.R_OK):
        return "not readable"
    return None


def _walk(root: Path):
    """``os.walk`` that follows linked folders (a technique folder may be a link) once each.

    A link back to a folder already walked (a loop, or the same folder twice) is
    pruned, so the walk ends on any tree.
    """
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            info = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        yield dirpath, sorted(filenames)


def _load_sol_tree(root: Path) -> pd.DataFrame:
    rows, ignored = [], []
    for dirpath, filenames in _walk(root):
        for name in filenames:
            if name.startswith("."):
                continue  # macOS resource forks and other hidden files
            full = Path(dirpath) / name
            rel = full.relative_to(root)
            if full.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            reason = _unusable(full, name)
            if reason is not None:
                ignored.append(f"{rel.as_posix()!a} ({reason})" if reason.startswith("name")
                               else f"{rel.as_posix()} ({reason})")
                continue
            parts = rel.parts
            if len(parts) != 4 or parts[2] not in TECHNIQUE_FOLDERS:
                ignored.append(rel.as_posix())
                continue
            family, instrument, folder, _ = parts
            rows.append(
                {
                    "path": str(full),
                    "technique": TECHNIQUE_FOLDERS[folder],
                    "instrument": instrument,
                    "family": family,
                    "f0_hz": f0_from_filename(name),
                    "modulation_rate_hz": np.nan,
                    "technique_original": folder,
                }
            )
    if not rows:
        what = (
            f"{len(ignored)} audio files, none in a known technique folder"
            if ignored
            else ("no audio files (.wav, .flac)")
        )
        raise DatasetError(f"{root}: {what}; expected Family/Instrument/technique/file.wav")
    df = pd.DataFrame(rows)
    df["subset"] = ""  # no split on disk: pmt_core.data.split.assign_split makes one
    _check_duplicates(df, root, [str(Path(p).relative_to(root)) for p in df["path"]])
    return _finish(df, "sol_tree", root, ignored)


def _check_names(df: pd.DataFrame, where: Path, check_subset: bool = True) -> None:
    unknown = sorted(set(df["technique"]) - set(TECHNIQUES))
    if unknown:
        raise DatasetError(f"{where}: unknown technique(s) {unknown}; expected {list(TECHNIQUES)}")
    if check_subset:
        bad = sorted(set(df["subset"]) - set(SUBSETS))
        if bad:
            raise DatasetError(f"{where}: unknown subset name(s) {bad}; expected {list(SUBSETS)}")


def _check_files(df: pd.DataFrame, where: Path) -> None:
    problems = []
    for p in df["path"]:
        reason = "missing" if not os.path.lexists(p) else _unusable(Path(p), Path(p).name)
        if reason is not None:
            problems.append(f"{p!a} ({reason})")
    if problems:
        raise DatasetError(f"{where}: {len(problems)} audio file(s) cannot be used, e.g. "
                           + ", ".join(problems[:3]))


def _csv_lines(df: pd.DataFrame) -> list[str]:
    # Line numbers of the CSV file (line 1 is the header), as an editor shows them.
    return [f"line {i + 2}" for i in range(len(df))]


def _positive_numbers(df: pd.DataFrame, column: str, where: Path) -> pd.Series:
    """``column`` as floats; empty cells are NaN, text and values <= 0 or inf are refused."""
    values = pd.to_numeric(df[column], errors="coerce")
    text = df[column].notna() & values.isna()
    bad = text | (values.notna() & ~(np.isfinite(values) & (values > 0)))
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        lines = ", ".join(f"line {i + 2} ({df[column].iloc[i]!r})" for i in rows[:5])
        raise DatasetError(f"{where}: column {column!r} must hold positive numbers (Hz) or "
                           f"be empty; bad values at {lines}")
    return values.astype(float)


#: Bytes read from the start of each same-size file before hashing it whole: files
#: that differ there are not duplicates, and reading a little is far cheaper than
#: hashing a whole SOL tree.
_HEAD_BYTES = 1 << 16


def _head_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read(_HEAD_BYTES)).hexdigest()


def _check_duplicates(df: pd.DataFrame, where: Path, labels: list[str]) -> None:
    """Refuse a file listed twice, two files of equal content, or equal synthetic rows.

    ``labels[i]`` names row ``i`` in messages (a CSV line or a relative path).
    """
    problems: list[str] = []
    files = df["path"].to_numpy() != ""
    techniques = df["technique"].to_numpy()

    def describe(group, what: str) -> str:
        named = ", ".join(labels[i] for i in group[:4]) + (", ..." if len(group) > 4 else "")
        kinds = sorted(set(techniques[group]))
        if len(kinds) > 1:
            return (f"{what} is labelled with {len(kinds)} techniques ("
                    + ", ".join(f"{techniques[i]} at {labels[i]}" for i in group[:4]) + ")")
        return f"{what} appears {len(group)} times ({named})"

    path_groups = _equal_groups(list(np.flatnonzero(files)), lambda i: df["path"].iloc[i])
    problems += [describe(np.asarray(g), os.path.basename(df["path"].iloc[g[0]]))
                 for g in path_groups]

    # Equal content under different names: size, then the first 64 KiB, then all.
    listed_twice = {i for g in path_groups for i in g[1:]}
    candidates = [i for i in np.flatnonzero(files) if i not in listed_twice]
    groups = _equal_groups(candidates, lambda i: os.path.getsize(df["path"].iloc[i]))
    groups = [g for group in groups for g in _equal_groups(
        group, lambda i: _head_digest(df["path"].iloc[i]))]
    groups = [g for group in groups for g in _equal_groups(
        group, lambda i: file_digest(df["path"].iloc[i]))]
    problems += [describe(np.asarray(g), "the same audio (identical file content)")
                 for g in groups]

    synthetic = np.flatnonzero(~files)
    if len(synthetic) > 1:
        identity = [c for c in df.columns if c not in ("path", "subset")]
        keys = [tuple(str(v) for v in row)
                for row in df.iloc[synthetic][identity].itertuples(index=False)]
        groups = _equal_groups(list(range(len(synthetic))), lambda j: keys[j])
        problems += [describe(synthetic[np.asarray(g)], "a synthetic example (same parameters)")
                     for g in groups]
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise DatasetError(f"{where}: every example may appear once, or it can land in both "
                           f"training and test: " + "; ".join(problems[:3]) + more)


def _equal_groups(items: list, key) -> list[list]:
    """Return the groups (two or more) of ``items`` with equal ``key(item)``, first seen first."""
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [g for g in groups.values() if len(g) > 1]


def _finish(df: pd.DataFrame, source: str, where: Path, ignored: list[str]) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    df.attrs.update(source=source, path=str(where), n_ignored=len(ignored), ignored=list(ignored))
    return df
