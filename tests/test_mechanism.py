"""Two known mechanisms: the tag, and the contrast that model-free maps cannot pass."""

import numpy as np
import pytest
import torch

from pmt_core.explain import mechanism as mech
from pmt_core.explain.occlusion import band_shares, s2_bands
from pmt_core.features.scattering import ScatteringConfig, path_table
from pmt_core.profiles import get_profile
from pmt_core.techniques import MODULATION_BAND_HZ


@pytest.fixture(scope="module")
def bands():
    return s2_bands(path_table(ScatteringConfig(**get_profile("ci").scattering)))


def test_tags_sit_an_octave_above_every_technique_one_band_per_class(bands):
    tags = mech.tag_bands(bands, 5)
    assert len(set(tags.tolist())) == 5
    top = max(hi for _, hi in MODULATION_BAND_HZ.values())
    assert np.all(bands.hz[tags] >= 2 * top)
    assert mech.tag_bands(bands, len(bands.hz)) is None  # not enough bands: no tags


def test_the_tag_moves_only_its_classes_band(bands):
    tags = mech.tag_bands(bands, 3)
    n_paths = int(max(max(m) for m in bands.members)) + 1
    x = torch.zeros((6, n_paths, 4))
    labels = np.array([0, 1, 2, 0, 1, 2])
    tagged = mech.add_tag(x, labels, bands, tags, np.ones(n_paths))
    assert torch.count_nonzero(x) == 0  # the input is not changed in place
    for i, k in enumerate(labels):
        moved = torch.nonzero(tagged[i].sum(dim=-1)).ravel().numpy()
        assert sorted(moved) == sorted(bands.members[tags[k]])
        assert torch.allclose(tagged[i, moved], torch.full((len(moved), 4), mech.TAG_SD))


def test_contrast_accepts_each_models_own_mechanism_and_rejects_one_map_for_both():
    rng = np.random.default_rng(0)
    n, n_bands = 50, 12
    rate_band = rng.integers(0, 5, n)
    tag_band = 8 + rng.integers(0, 4, n)
    near = np.zeros((n, n_bands), bool)
    near[np.arange(n), rate_band] = True

    def at(band):
        shares = 0.01 * rng.random((n, n_bands))
        shares[np.arange(n), band] += 1.0
        return band_shares(shares)

    own = mech.mechanism_contrast(at(rate_band), at(tag_band), near, tag_band)
    assert np.all(own > 1.8)
    same = at(rate_band)
    assert np.all(mech.mechanism_contrast(same, same, near, tag_band) == 0.0)
    assert np.all(mech.mechanism_contrast(at(tag_band), at(rate_band), near, tag_band) < -1.8)
    near[0] = False
    assert np.isnan(mech.mechanism_contrast(same, same, near, tag_band)[0])
