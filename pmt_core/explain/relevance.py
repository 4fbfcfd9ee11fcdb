"""Statistics of relevance maps over the scattering paths (method.md section 4).

Every function here is pure numpy/scipy and knows the paths' metadata (carrier
lambda1 and modulation lambda2 in Hz, from :class:`~pmt_core.features.scattering.PathTable`).
Relevance is defined in the network's input domain: the log-compressed
scattering features (``pmt_core.features.compression``), after nothing else; maps are its
average over the 32 frames (paper section 4.2, "local relevance maps").

Conventions
-----------
* ``maps`` are (examples, paths) time-averaged relevances, signed.
* "Largest" means largest signed value, as in the paper's Eq. 13 and the authors'
  code (``argmax``, not ``argmax |.|``): the most positive evidence for the
  explained class.
* Frequencies are compared on a log2 scale (octaves), as the filter banks are
  geometrically spaced (Q2 = 2: second-order centres half an octave apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from pmt_core.features.scattering import PathTable

__all__ = [
    "KurtosisSummary",
    "chance_hit_rate",
    "kurtosis_per_example",
    "kurtosis_summary",
    "lambda2_profile",
    "local_maps",
    "octave_distance",
    "peak_carrier_hz",
    "peak_modulation_hz",
    "peak_path",
    "rowwise_spearman",
    "s1_share",
    "top_n_aggregate",
    "top_n_positions",
]


def _as_maps(maps, paths: PathTable | None = None) -> np.ndarray:
    """Return ``maps`` as a float64 (examples, paths) array, checking the path count."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 1:
        maps = maps[None, :]
    if maps.ndim != 2:
        raise ValueError(f"expected maps of shape (examples, paths), got {maps.shape}")
    if paths is not None and maps.shape[1] != len(paths):
        raise ValueError(f"maps have {maps.shape[1]} paths, the path table {len(paths)}")
    return maps


def local_maps(relevance) -> np.ndarray:
    """Average input relevance over time frames (paper section 4.2).

    Parameters
    ----------
    relevance : array-like or torch.Tensor, shape (examples, paths, frames)
        Input relevance, e.g. ``Explanation.relevance``.

    Returns
    -------
    numpy.ndarray, float64, shape (examples, paths)
    """
    if hasattr(relevance, "detach"):
        relevance = relevance.detach().cpu().numpy()
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.ndim != 3:
        raise ValueError(
            f"expected relevance of shape (examples, paths, frames), got {relevance.shape}"
        )
    return relevance.mean(axis=-1)


# --- contrast -------------------------------------------------------------------


def kurtosis_per_example(maps) -> np.ndarray:
    """Fisher kurtosis of each example's time-averaged relevances.

    The authors' code (method.md section 4): ``scipy.stats.kurtosis`` with its
    defaults (Fisher, i.e. 0 for a Gaussian; biased estimator) over the 1,200
    relevances of one map, S1 and S2 together. A map with a few strong paths on a
    flat background has a large kurtosis: the paper reads it as "more contrasted".

    Parameters
    ----------
    maps : array-like, shape (examples, paths)

    Returns
    -------
    numpy.ndarray, shape (examples,)
        NaN for a constant map.
    """
    maps = _as_maps(maps)
    # A constant row has zero variance: scipy returns NaN with a warning; keep NaN.
    with np.errstate(all="ignore"):
        flat = np.ptp(maps, axis=1) == 0
        out = stats.kurtosis(maps, axis=1, fisher=True, bias=True)
    return np.where(flat, np.nan, out)


@dataclass(frozen=True)
class KurtosisSummary:
    """Mean and standard deviation of per-example kurtosis.

    Attributes
    ----------
    mean, sd : float
        Over the finite values; ``sd`` with ``ddof`` as requested (the paper does
        not say which; numpy's default ddof = 0 is the authors' likely one).
    n : int
        Number of finite values.
    """

    mean: float
    sd: float
    n: int


def kurtosis_summary(kurtosis, ddof: int = 0) -> KurtosisSummary:
    """Summarise per-example kurtosis as mean and standard deviation.

    Parameters
    ----------
    kurtosis : array-like, shape (examples,)
        Output of :func:`kurtosis_per_example`; NaNs (constant maps) are dropped.
    ddof : int
        Delta degrees of freedom of the standard deviation.

    Returns
    -------
    KurtosisSummary
    """
    k = np.asarray(kurtosis, dtype=np.float64).ravel()
    k = k[np.isfinite(k)]
    if k.size == 0:
        return KurtosisSummary(np.nan, np.nan, 0)
    sd = float(np.std(k, ddof=ddof)) if k.size > ddof else np.nan
    return KurtosisSummary(float(np.mean(k)), sd, int(k.size))


# --- class-wise aggregation (Eq. 13) ----------------------------------------------


def top_n_positions(maps, n: int = 5) -> np.ndarray:
    """Return the path indices of each example's ``n`` largest signed relevances.

    Parameters
    ----------
    maps : array-like, shape (examples, paths)
    n : int
        Number of positions per example (the paper's top-5).

    Returns
    -------
    numpy.ndarray of int, shape (examples, n)
        Largest first. Ties are broken by path order (stable sort).
    """
    maps = _as_maps(maps)
    if not 1 <= n <= maps.shape[1]:
        raise ValueError(f"n must lie in [1, {maps.shape[1]}], got {n}")
    return np.argsort(-maps, axis=1, kind="stable")[:, :n]


def top_n_aggregate(maps, labels, n: int = 5, n_classes: int | None = None) -> np.ndarray:
    """Class-wise aggregated relevance map: counts of top-n positions (paper Eq. 13).

    For each example of a class, the positions of its ``n`` largest (signed)
    time-averaged relevances, S1 paths included, are registered; the class map
    counts them over the class's examples (Wang et al., section 4.3; the authors'
    code does the same).

    Parameters
    ----------
    maps : array-like, shape (examples, paths)
    labels : array-like of int, shape (examples,)
        Class of each example (0 .. n_classes - 1).
    n : int
        Positions per example.
    n_classes : int, optional
        Default ``max(labels) + 1``.

    Returns
    -------
    numpy.ndarray of int, shape (n_classes, paths)
        Row c sums to ``n`` times the number of examples of class c.
    """
    maps = _as_maps(maps)
    labels = np.asarray(labels).astype(int).ravel()
    if labels.shape[0] != maps.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {maps.shape[0]} maps")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative")
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and labels.max() >= n_classes:
        raise ValueError(f"label {labels.max()} >= n_classes {n_classes}")
    counts = np.zeros((n_classes, maps.shape[1]), dtype=np.int64)
    if labels.size:
        top = top_n_positions(maps, n)
        np.add.at(counts, (np.repeat(labels, n), top.ravel()), 1)
    return counts


# --- peaks and localisation -------------------------------------------------------


def peak_path(maps, paths: PathTable, order: int | None = 2) -> np.ndarray:
    """Index of each example's largest signed value, among the paths of one order.

    Parameters
    ----------
    maps : array-like, shape (examples, paths)
    paths : PathTable
    order : {2, 1, None}
        Restrict to second-order (default) or first-order paths; None: all paths.

    Returns
    -------
    numpy.ndarray of int, shape (examples,)
        Index into the full path axis.
    """
    maps = _as_maps(maps, paths)
    if order is None:
        candidates = np.arange(len(paths))
    elif order in (1, 2):
        candidates = np.flatnonzero(paths.order == order)
    else:
        raise ValueError(f"order must be 1, 2 or None, got {order!r}")
    if candidates.size == 0:
        raise ValueError(f"no paths of order {order}")
    return candidates[np.argmax(maps[:, candidates], axis=1)]


def peak_on_present(maps, inputs, reference, paths: PathTable) -> np.ndarray:
    """Whether each example's S2 peak sits where its input exceeds the reference.

    Relevance lives on the network's input after its batch norm, so positive
    relevance at a path can mean "more of this modulation than usual" (presence)
    or "less than usual" (absence): the sign of input minus training mean decides.

    Parameters
    ----------
    maps : array-like, shape (examples, paths)
    inputs : array-like, shape (examples, paths)
        The time-averaged compressed inputs of the same examples.
    reference : array-like, shape (paths,)
        The training mean of the compressed inputs (what the batch norm subtracts).
    paths : PathTable

    Returns
    -------
    numpy.ndarray of bool, shape (examples,)
        True: the peak path's input is above its reference (presence).
    """
    inputs = np.asarray(inputs, dtype=float)
    peak = peak_path(maps, paths, order=2)
    rows = np.arange(len(peak))
    return inputs[rows, peak] > np.asarray(reference, dtype=float)[peak]


def peak_modulation_hz(maps, paths: PathTable) -> np.ndarray:
    """lambda2 (Hz) at each example's largest second-order value.

    Parameters
    ----------
    maps : array-like, shape (examples, paths)
        Relevance, energy or any per-path score; S1 paths are ignored.
    paths : PathTable

    Returns
    -------
    numpy.ndarray, shape (examples,)
    """
    return np.asarray(paths.modulation_hz)[peak_path(maps, paths, order=2)]


def peak_carrier_hz(maps, paths: PathTable, order: int | None = 2) -> np.ndarray:
    """lambda1 (Hz) at each example's largest value (second-order paths by default).

    With the default the peak is the same path as :func:`peak_modulation_hz`'s, so
    the two give the (lambda1, lambda2) cell of the peak.

    Parameters
    ----------
    maps : array-like, shape (examples, paths)
    paths : PathTable
    order : {2, 1, None}
        As in :func:`peak_path`.

    Returns
    -------
    numpy.ndarray, shape (examples,)
    """
    return np.asarray(paths.carrier_hz)[peak_path(maps, paths, order=order)]


def octave_distance(a_hz, b_hz) -> np.ndarray:
    """Distance in octaves, ``|log2(a / b)|`` (broadcasts).

    Raises
    ------
    ValueError
        If a frequency is not strictly positive (NaN passes through as NaN).
    """
    a = np.asarray(a_hz, dtype=np.float64)
    b = np.asarray(b_hz, dtype=np.float64)
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("frequencies must be strictly positive")
    return np.abs(np.log2(a / b))


def chance_hit_rate(paths: PathTable, true_rate_hz, tol_octaves: float) -> np.ndarray:
    """Exact hit probability of a random map, per example.

    A map of i.i.d. continuous values puts its second-order peak on each S2 path
    with equal probability, so the chance of a hit is the fraction of S2 paths
    whose lambda2 lies within ``tol_octaves`` of the example's rate. S2 paths are
    not spread evenly over lambda2 (low modulations exist under more carriers), so
    this is not the fraction of lambda2 columns.

    Parameters
    ----------
    paths : PathTable
    true_rate_hz : array-like, shape (examples,)
    tol_octaves : float

    Returns
    -------
    numpy.ndarray, shape (examples,)
    """
    rate = np.asarray(true_rate_hz, dtype=np.float64).ravel()
    lam2 = np.asarray(paths.modulation_hz)[paths.second_order]
    near = octave_distance(lam2[None, :], rate[:, None]) <= tol_octaves
    return near.mean(axis=1)


def s1_share(maps, paths: PathTable) -> np.ndarray:
    """Share of each example's total |relevance| carried by first-order paths.

    Compare with ``paths.first_order.mean()`` (74 / 1,200 = 6.2 %), the share a
    map spread evenly over the paths would give (paper section 4.2: "S1 exhibits
    low relevance values ... as compared to S2").

    Parameters
    ----------
    maps : array-like, shape (examples, paths)
    paths : PathTable

    Returns
    -------
    numpy.ndarray, shape (examples,)
        NaN for an all-zero map.
    """
    a = np.abs(_as_maps(maps, paths))
    total = a.sum(axis=1)
    s1 = a[:, paths.first_order].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, s1 / total, np.nan)


# --- relevance against energy -----------------------------------------------------


def rowwise_spearman(a, b) -> np.ndarray:
    """Spearman's rho between matching rows of two (examples, paths) arrays.

    Parameters
    ----------
    a, b : array-like, shape (examples, paths)

    Returns
    -------
    numpy.ndarray, shape (examples,)
        ``scipy.stats.spearmanr`` of each row pair; NaN where a row is constant
        (rank correlation undefined).
    """
    a = _as_maps(a)
    b = _as_maps(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    rho = np.full(a.shape[0], np.nan)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            rho[i] = stats.spearmanr(x, y).statistic
    return rho


# --- pitch invariance --------------------------------------------------------------


def lambda2_profile(values, paths: PathTable) -> tuple[np.ndarray, np.ndarray]:
    """Marginal of per-path values along lambda2: sum over the S2 paths of each lambda2.

    Used to compare class aggregates (:func:`top_n_aggregate`) or maps across f0
    groups: a pitch-invariant explanation keeps its lambda2 profile while the
    carriers move with pitch. S1 paths (no lambda2) are left out.

    Parameters
    ----------
    values : array-like, shape (paths,) or (..., paths)
        Counts, relevances or energies per path.
    paths : PathTable

    Returns
    -------
    modulation_hz : numpy.ndarray, shape (m,)
        The distinct lambda2 (ascending).
    profile : numpy.ndarray, shape (..., m)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[-1] != len(paths):
        raise ValueError(f"values have {values.shape[-1]} paths, the table {len(paths)}")
    s2 = np.asarray(paths.second_order)
    lam2 = np.asarray(paths.modulation_hz)[s2]
    freqs, column = np.unique(lam2, return_inverse=True)
    onehot = np.zeros((lam2.size, freqs.size))
    onehot[np.arange(lam2.size), column] = 1.0
    return freqs, values[..., s2] @ onehot


# --- per-example rate tracking (the claims' nulls) -----------------------------------


def expected_permuted_hits(peak_hz, rate_hz, classes, tol_octaves: float) -> np.ndarray:
    """Each example's expected hit if its rate were a random other rate of its class.

    The within-class permutation null of the localisation claim (audit C1): a map
    that knows only the class (for example, one that always peaks at the same
    lambda2 per class) hits as often against its class's rates shuffled as against
    the true ones. Under a uniform random permutation within the class, example i
    receives each rate of its class with equal probability, so its expected hit is
    the share of the class's rates within ``tol_octaves`` of its peak; no Monte
    Carlo is needed.

    Parameters
    ----------
    peak_hz, rate_hz : array-like, (n,)
        Peak lambda2 and true rate of the scored examples (finite, positive).
    classes : array-like, (n,)
        Class of each example; the permutation stays within it.
    tol_octaves : float

    Returns
    -------
    numpy.ndarray, (n,)
        In [0, 1].
    """
    peak = np.asarray(peak_hz, dtype=np.float64)
    rate = np.asarray(rate_hz, dtype=np.float64)
    classes = np.asarray(classes)
    out = np.full(peak.shape, np.nan)
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        near = octave_distance(peak[members][:, None], rate[members][None, :]) <= tol_octaves
        out[members] = near.mean(axis=1)
    return out


def ordered_pairs(bands: dict, names) -> list[tuple[str, str]]:
    """Pairs (low, high) of techniques whose a-priori bands do not overlap.

    ``high``'s band lies entirely at or above ``low``'s: the physics orders them.
    """
    pairs = []
    for a in names:
        for b in names:
            if a != b and bands[a][1] <= bands[b][0]:
                pairs.append((a, b))
    return pairs


def ordered_pair_share(values, classes, class_names, bands: dict):
    """Share of :func:`ordered_pairs` whose class medians of ``values`` are ordered.

    Parameters
    ----------
    values : array-like, (n,)
        Per example (e.g. peak lambda2 in Hz); NaN ignored.
    classes : array-like of int, (n,)
        Index into ``class_names``.
    class_names : sequence of str
    bands : dict
        Technique -> (low, high) Hz, fixed a priori (``techniques.MODULATION_BAND_HZ``).

    Returns
    -------
    share : float
        NaN when no pair can be checked.
    rows : list of dict
        One per pair: low, high, their medians, ordered.
    """
    values = np.asarray(values, dtype=np.float64)
    classes = np.asarray(classes)
    medians = {}
    for k, name in enumerate(class_names):
        v = values[(classes == k) & np.isfinite(values)]
        if v.size:
            medians[name] = float(np.exp2(np.median(np.log2(v))))
    rows = [{"lower band": a, "higher band": b, "median lower (Hz)": medians[a],
             "median higher (Hz)": medians[b], "ordered": medians[a] < medians[b]}
            for a, b in ordered_pairs(bands, [n for n in class_names if n in bands])
            if a in medians and b in medians]
    share = float(np.mean([r["ordered"] for r in rows])) if rows else float("nan")
    return share, rows


def restrict_below(maps, paths: PathTable, max_hz) -> np.ndarray:
    """Return the maps with every S2 path at lambda2 >= ``max_hz`` (per example) at -inf.

    Used by the pitch claim to read lambda2 below f0 / 2 only: harmonics closer
    than a first-order bandwidth beat at lambda2 ~ f0 whatever the explanation.
    S1 paths are kept.
    """
    maps = _as_maps(maps, paths).copy()
    limit = np.asarray(max_hz, dtype=np.float64).reshape(-1, 1)
    lam2 = np.asarray(paths.modulation_hz)[None, :]
    drop = np.asarray(paths.second_order)[None, :] & (lam2 >= limit)
    maps[drop] = -np.inf
    return maps


#: Rates drawn per example from the distractors' distribution: the reference a
#: share at the distractor's own rate is compared with.
DISTRACTOR_RANDOM_RATES = 16


def distractor_scoring(distractor_hz, rate_hz, lambda2_hz, tol_octaves: float, seed: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Which examples the distractor criteria score, and their random reference rates.

    An example is scored where its distractor lies over an octave from its
    technique's rate (otherwise the two cannot be told apart) and some lambda2
    lies within ``tol_octaves`` of the distractor (otherwise every score there is
    0 and a criterion holds by construction).

    Parameters
    ----------
    distractor_hz, rate_hz : array-like, (n,)
        NaN or non-positive where unknown.
    lambda2_hz : array-like
        The transform's second-order modulation frequencies (any repeats).
    tol_octaves : float
    seed : int

    Returns
    -------
    scored : numpy.ndarray of bool, (n,)
    random_rates : numpy.ndarray, (n, DISTRACTOR_RANDOM_RATES)
        Drawn from the known distractor rates (the same draws for every caller
        with the same seed and data).
    """
    d = np.asarray(distractor_hz, dtype=np.float64)
    r = np.asarray(rate_hz, dtype=np.float64)
    known_d = np.isfinite(d) & (d > 0)
    known_r = np.isfinite(r) & (r > 0)
    scored = known_d & known_r
    with np.errstate(invalid="ignore", divide="ignore"):
        scored &= np.abs(np.log2(np.where(scored, d / np.where(known_r, r, 1.0), 1.0))) > 1.0
        lam2 = np.asarray(lambda2_hz, dtype=np.float64).ravel()
        lam2 = lam2[np.isfinite(lam2) & (lam2 > 0)]
        reach = np.abs(np.log2(lam2[None, :] / np.where(scored, d, 1.0)[:, None]))
    scored &= reach.min(axis=1, initial=np.inf) <= tol_octaves
    rng = np.random.default_rng([seed, 17])
    pool = np.log2(d[known_d]) if known_d.any() else np.zeros(1)
    return scored, np.exp2(rng.choice(pool, size=(len(d), DISTRACTOR_RANDOM_RATES)))


def window_share(maps, paths: PathTable, centre_hz, tol_octaves: float) -> np.ndarray:
    """Per example, share of its S2 |relevance| on paths within ``tol_octaves`` of a rate.

    Parameters
    ----------
    maps : array-like, (n, paths)
    paths : PathTable
    centre_hz : array-like, (n,) or (n, k)
        One rate per example, or k rates (the share is then averaged over them).
    tol_octaves : float

    Returns
    -------
    numpy.ndarray, (n,)
    """
    a = np.abs(_as_maps(maps, paths))[:, paths.second_order]
    total = a.sum(axis=1)
    lam2 = np.asarray(paths.modulation_hz)[paths.second_order]
    centre = np.asarray(centre_hz, dtype=np.float64)
    if centre.ndim == 1:
        centre = centre[:, None]
    shares = []
    for j in range(centre.shape[1]):
        near = octave_distance(lam2[None, :], centre[:, j : j + 1]) <= tol_octaves
        shares.append((a * near).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.mean(shares, axis=0) / total, np.nan)
