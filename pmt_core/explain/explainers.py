"""Every explanation the relevance claims are run on: LRP readings, baselines, nulls.

A claim about explanations must tell a faithful explanation from one that
ignores the example or the model, so each relevance and sanity claim is
measured for every explainer registered here (:data:`EXPLAINERS`):

* the LRP composites of :mod:`pmt_core.explain.lrp` (the paper's text, the
  authors' code, and variants), through zennit;
* model-based attributions from zennit's attributors: the gradient,
  gradient x input (Shrikumar et al. 2016), integrated gradients (Sundararajan,
  Taly & Yan 2017; baseline: the all-zero compressed input, i.e. silence on
  every path) and SmoothGrad (Smilkov et al. 2017);
* null explainers, which any claim worth its name must reject (``null=True``):
  ``random`` (i.i.d. uniform maps), ``class_constant`` (one map per class,
  fitted on the training split only, see :func:`fit_class_profiles`),
  ``input`` (the normalised input the network sees, no model),
  ``energy_raw`` and ``energy_norm`` (raw scattering energy per path, and
  divided by its training mean), and ``lrp_randomised`` (the paper's text
  reading of LRP on the network with every layer re-initialised).

Every explainer returns time-averaged maps (examples x paths) for the given
target class, in the same units whatever the explainer: only orders, signs and
shapes are compared across explainers, never magnitudes. For the LRP readings
the top relevance is the one-hot of the target (the authors' code), so a map's
sign never depends on the sign of the logit (audit m2); what reaches the input
relative to the logit is measured by the LRP claims instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pmt_core.features.scattering import PathTable

__all__ = [
    "EXPLAINERS",
    "Explainer",
    "ExplainerInputs",
    "ExplainerOutput",
    "fit_class_profiles",
    "lrp_explainer_names",
    "null_explainer_names",
    "randomised_copy",
    "register_explainer",
]

#: Steps of integrated gradients and samples of SmoothGrad: 16 keeps their cost
#: at about 16 gradient passes per example (the 2-core runner's budget).
IG_STEPS = 16
SMOOTHGRAD_SAMPLES = 16
#: SmoothGrad's noise: sigma / (max - min) of each input, zennit's default.
SMOOTHGRAD_NOISE = 0.1
#: Composite of the randomised-model null: the paper's text reading.
RANDOMISED_COMPOSITE = "epsilon_zplus"
#: What a null explainer ignores (:attr:`Explainer.ignores`): the example and the
#: model (random maps), the example (one map per class), the model (maps from the
#: input alone), or what the model learned (the randomised network).
NULL_IGNORES = ("everything", "example", "model", "training")
#: The code each stored explainer runs (:attr:`Explainer.cache_code`): the network's
#: forward pass and this module's wrappers, plus the LRP package for the readings, so
#: that an LRP constant recomputes the readings but not the gradients.
ATTRIBUTION_CODE = ("pmt_core.explain.explainers", "pmt_core.model.network")
LRP_CODE = ATTRIBUTION_CODE + ("pmt_core.explain.lrp",)
RANDOMISED_LRP_CODE = LRP_CODE + ("pmt_core.model.randomisation",)


@dataclass
class ExplainerInputs:
    """What an explainer may look at for one trained replicate.

    Attributes
    ----------
    model : torch.nn.Module
        The trained network (never modified).
    x : torch.Tensor, (n, paths, frames)
        Compressed inputs of the examples to explain.
    target : numpy.ndarray of int, (n,)
        Class to explain per example (the replicate's prediction).
    energy : numpy.ndarray, (n, paths)
        Time-averaged raw scattering coefficients (kymatio's scale undone).
    reference_mean : numpy.ndarray, (paths,)
        Per-path training mean of the time-averaged raw coefficients (the
        compression's mu).
    class_profiles : numpy.ndarray, (classes, paths)
        :func:`fit_class_profiles` of the training split.
    input_mean, input_std : numpy.ndarray, (paths,)
        Per-path mean and standard deviation of the compressed training inputs
        (over examples and frames): the input-only null's normalisation, learned
        from the data, not from the network.
    paths : PathTable
    seed : int
        Seeds the random null, SmoothGrad's noise and the re-initialisation.
    device : torch.device
    rows : pandas.DataFrame or None
        The explained examples' rows of the data set (one per row of ``x``: path,
        technique, and where the data have them ``modulation_rate_hz``, ``f0_hz``,
        ``distractor_rate_hz``), so that an explainer registered from a plugin can
        use ground truth (a planted oracle); None where the caller has no rows.
    """

    model: torch.nn.Module
    x: torch.Tensor
    target: np.ndarray
    energy: np.ndarray
    reference_mean: np.ndarray
    class_profiles: np.ndarray
    paths: PathTable
    seed: int
    device: torch.device
    input_mean: np.ndarray | None = None
    input_std: np.ndarray | None = None
    rows: object = None


@dataclass
class ExplainerOutput:
    """Maps (n, paths) float64, and the input sums (n,) where meaningful."""

    maps: np.ndarray
    input_sums: np.ndarray | None = None


@dataclass(frozen=True)
class Explainer:
    """A registered explanation method.

    Attributes
    ----------
    name : str
    label : str
        Short display label.
    kind : {"lrp", "attribution", "null"}
    null : bool
        A null explainer: claims must reject it.
    description : str
    reading : str or None
        For LRP composites: "paper text", "authors' code" or "variant".
    compute : callable
        ``compute(ExplainerInputs) -> ExplainerOutput``.
    ignores : str or None
        For a null: what it ignores, one of :data:`NULL_IGNORES`. The families
        choose the nulls they must reject by it (:class:`pmt_core.claims.families.Nulls`),
        so a null registered from a plugin is held to the same bars as the built-in
        ones that ignore the same thing.
    cache_code : tuple of str or None
        Modules (or packages) whose source, with the hashed inputs, determines the
        maps: the explanation cache stores the explainer's maps under their digest
        (:mod:`pmt_core.explain.cache`). None (the default): never stored, for cheap
        explainers and for those that read ``rows`` or anything else not hashed.
    """

    name: str
    label: str
    kind: str
    null: bool
    description: str
    compute: Callable
    reading: str | None = None
    cache_code: tuple[str, ...] | None = None
    ignores: str | None = None

    def __post_init__(self):
        if self.ignores is not None and self.ignores not in NULL_IGNORES:
            raise ValueError(f"explainer {self.name!r}: ignores must be one of "
                             f"{NULL_IGNORES}, got {self.ignores!r}")

    def __call__(self, inputs: ExplainerInputs) -> ExplainerOutput:
        """Explain ``inputs`` (see :attr:`compute`)."""
        return self.compute(inputs)


#: name -> Explainer, in registration order (LRP readings first).
EXPLAINERS: dict[str, Explainer] = {}


def register_explainer(explainer: Explainer) -> Explainer:
    """Add ``explainer`` to :data:`EXPLAINERS` (names are unique)."""
    if explainer.name in EXPLAINERS:
        raise ValueError(f"explainer {explainer.name!r} is already registered")
    EXPLAINERS[explainer.name] = explainer
    return explainer


def lrp_explainer_names() -> tuple[str, ...]:
    """Names of the LRP composites among the explainers."""
    return tuple(n for n, e in EXPLAINERS.items() if e.kind == "lrp")


def null_explainer_names(*ignoring: str) -> tuple[str, ...]:
    """Names of the null explainers in registration order.

    With ``ignoring``, only the nulls whose :attr:`Explainer.ignores` is one of them.
    """
    unknown = set(ignoring) - set(NULL_IGNORES)
    if unknown:
        raise ValueError(f"unknown null kinds {sorted(unknown)}; expected {NULL_IGNORES}")
    return tuple(n for n, e in EXPLAINERS.items()
                 if e.null and (not ignoring or e.ignores in ignoring))


# ---------------------------------------------------------------- helpers --
def _time_average(relevance) -> np.ndarray:
    if isinstance(relevance, torch.Tensor):
        relevance = relevance.detach().cpu().numpy()
    return np.asarray(relevance, dtype=np.float64).mean(axis=-1)


def _eval_copy(model: torch.nn.Module, device) -> torch.nn.Module:
    work = copy.deepcopy(model).to(device).eval()
    for p in work.parameters():
        p.requires_grad_(False)
    return work


def _batches(n: int, size: int = 64):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _zennit(inputs: ExplainerInputs, make_attributor, times_input: bool = False):
    model = _eval_copy(inputs.model, inputs.device)
    n_classes = model(inputs.x[:1].to(inputs.device)).shape[1]
    maps = []
    with torch.random.fork_rng(devices=[inputs.device] if inputs.device.type == "cuda" else []):
        torch.manual_seed(int(inputs.seed))
        for part in _batches(len(inputs.x)):
            x = inputs.x[part].to(inputs.device).clone().requires_grad_(True)
            onehot = torch.eye(n_classes, device=inputs.device)[
                torch.as_tensor(inputs.target[part], device=inputs.device)]
            with make_attributor(model) as attributor:
                _, relevance = attributor(x, onehot)
            if times_input:
                relevance = relevance * x.detach()
            maps.append(_time_average(relevance))
    return ExplainerOutput(np.concatenate(maps))


# ------------------------------------------------------------------- LRP --
def _lrp(composite: str, randomise: bool = False):
    def compute(inputs: ExplainerInputs) -> ExplainerOutput:
        from pmt_core.explain.lrp import explain

        model = randomised_copy(inputs.model, inputs.seed) if randomise else inputs.model
        e = explain(model, inputs.x, composite, target=inputs.target, top="onehot",
                    device=inputs.device)
        return ExplainerOutput(_time_average(e.relevance),
                               e.relevance.reshape(len(e.relevance), -1).sum(1))

    return compute


def randomised_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Return a copy of ``model`` with every layer that has parameters re-initialised.

    The last stage of the cascading randomisation
    (:func:`pmt_core.model.randomisation.reinitialise` on every layer of the cascade),
    so the null and the sanity check agree.
    """
    from pmt_core.model import randomisation

    work = copy.deepcopy(model).eval()
    for k, name in enumerate(randomisation.CASCADE_LAYERS):
        randomisation.reinitialise(getattr(work, name), int(seed) * 1000 + k)
    return work


def _register_lrp() -> None:
    from pmt_core.explain.lrp import RULES

    for name, spec in RULES.items():
        register_explainer(Explainer(
            name, getattr(spec, "label", name), "lrp", False,
            getattr(spec, "provenance", ""), _lrp(name),
            reading=getattr(spec, "reading", None), cache_code=LRP_CODE))


# ------------------------------------------------------------ attributions --
def _gradient(inputs):
    from zennit.attribution import Gradient

    return _zennit(inputs, lambda m: Gradient(model=m))


def _gradient_x_input(inputs):
    from zennit.attribution import Gradient

    return _zennit(inputs, lambda m: Gradient(model=m), times_input=True)


def _integrated_gradients(inputs):
    from zennit.attribution import IntegratedGradients

    return _zennit(inputs, lambda m: IntegratedGradients(model=m, n_iter=IG_STEPS))


def _smoothgrad(inputs):
    from zennit.attribution import SmoothGrad

    return _zennit(inputs, lambda m: SmoothGrad(model=m, noise_level=SMOOTHGRAD_NOISE,
                                                n_iter=SMOOTHGRAD_SAMPLES))


# ------------------------------------------------------------------- nulls --
def fit_class_profiles(labels: np.ndarray, n_classes: int, paths: PathTable, *,
                       rates_hz: np.ndarray | None = None,
                       energy_norm: np.ndarray | None = None,
                       tol_octaves: float = 0.5) -> np.ndarray:
    """One map per class, from the training split only: the class-constant null.

    With known modulation rates, a class's profile is the share of its training
    examples whose rate lies within ``tol_octaves`` of each S2 path's lambda2:
    its peak is the lambda2 that a map ignoring the example would best choose to
    localise the class (the strongest class-constant map for the localisation
    and peak claims). Without rates, the class's mean normalised energy map.

    Parameters
    ----------
    labels : numpy.ndarray of int, (n_train,)
    n_classes : int
    paths : PathTable
    rates_hz : numpy.ndarray, (n_train,), optional
    energy_norm : numpy.ndarray, (n_train, paths), optional
        Needed without rates.
    tol_octaves : float

    Returns
    -------
    numpy.ndarray, (n_classes, paths)
        Non-negative; S1 paths get 0 in the rate-based profile.
    """
    labels = np.asarray(labels, dtype=int)
    out = np.zeros((n_classes, len(paths)))
    lam2 = np.asarray(paths.modulation_hz)
    s2 = np.asarray(paths.second_order)
    known = None if rates_hz is None else np.isfinite(rates_hz) & (np.asarray(rates_hz) > 0)
    for c in range(n_classes):
        members = labels == c
        if known is not None and np.any(members & known):
            r = np.asarray(rates_hz)[members & known]
            near = np.abs(np.log2(lam2[None, s2] / r[:, None])) <= tol_octaves
            out[c, s2] = near.mean(axis=0)
        elif energy_norm is not None and members.any():
            out[c] = np.asarray(energy_norm)[members].mean(axis=0)
    return out


def _random(inputs):
    rng = np.random.default_rng([int(inputs.seed), 11])
    return ExplainerOutput(rng.random((len(inputs.x), len(inputs.paths))))


def _class_constant(inputs):
    # Tiny deterministic ramp: ties between equal profile values break by path
    # order, the same way for every example.
    ramp = -1e-9 * np.arange(len(inputs.paths)) / len(inputs.paths)
    return ExplainerOutput(inputs.class_profiles[np.asarray(inputs.target)] + ramp)


def _input(inputs):
    # The input standardised with the training split's statistics: what the network's
    # input batch norm sees, with no part of the network (its learned normalisation
    # included) so that randomising the model cannot change it.
    x = inputs.x.detach().cpu().numpy().astype(np.float64)
    if inputs.input_mean is None:
        mean, std = x.mean(axis=(0, 2)), x.std(axis=(0, 2))
    else:
        mean, std = np.asarray(inputs.input_mean), np.asarray(inputs.input_std)
    x0 = (x - mean[None, :, None]) / np.where(std > 0, std, 1.0)[None, :, None]
    return ExplainerOutput(x0.mean(axis=-1))


def _energy_raw(inputs):
    return ExplainerOutput(np.asarray(inputs.energy, dtype=np.float64))


def _energy_norm(inputs):
    ref = np.asarray(inputs.reference_mean, dtype=np.float64)
    return ExplainerOutput(np.asarray(inputs.energy, dtype=np.float64)
                           / np.where(ref > 0, ref, np.inf))


def _register_all() -> None:
    _register_lrp()
    for name, label, fn, text in (
        ("gradient", "gradient", _gradient, "gradient of the target logit"),
        # Not an independent method: on a ReLU network without biases' share,
        # LRP-epsilon is gradient x input over the explained logit (measured to
        # 1.8e-3, audit M7), so its figures coincide with LRP-epsilon's in every
        # family; the label says so, so the matrix is not read as two methods.
        ("gradient_x_input", "gradient x input (= LRP-eps x logit)", _gradient_x_input,
         "gradient times the compressed input (Shrikumar et al. 2016); LRP-epsilon times "
         "the explained logit, up to epsilon's stabiliser: the same method as LRP-epsilon"),
        ("integrated_gradients", "integrated gradients", _integrated_gradients,
         f"{IG_STEPS} steps from the all-zero input (Sundararajan et al. 2017)"),
        ("smoothgrad", "SmoothGrad", _smoothgrad,
         f"{SMOOTHGRAD_SAMPLES} noisy gradients, noise {SMOOTHGRAD_NOISE} of the input's range "
         "(Smilkov et al. 2017)"),
    ):
        register_explainer(Explainer(name, label, "attribution", False, text, fn,
                                     cache_code=ATTRIBUTION_CODE))
    for name, label, fn, text, code, ignores in (
        ("random", "random (null)", _random, "i.i.d. uniform values: ignores everything",
         None, "everything"),
        ("class_constant", "class-constant (null)", _class_constant,
         "one map per class fitted on the training split: ignores the example", None,
         "example"),
        ("input", "input only (null)", _input,
         "the input standardised with the training statistics: ignores the model", None,
         "model"),
        ("energy_raw", "raw energy (null)", _energy_raw,
         "time-averaged raw scattering coefficients: ignores the model", None, "model"),
        ("energy_norm", "normalised energy (null)", _energy_norm,
         "raw energy over its training mean per path: ignores the model", None, "model"),
        ("lrp_randomised", "LRP, randomised model (null)",
         _lrp(RANDOMISED_COMPOSITE, randomise=True),
         f"LRP ({RANDOMISED_COMPOSITE}) of the network with every layer re-initialised: "
         "ignores what the model learned", RANDOMISED_LRP_CODE, "training"),
    ):
        register_explainer(Explainer(name, label, "null", True, text, fn, cache_code=code,
                                     ignores=ignores))


_register_all()
