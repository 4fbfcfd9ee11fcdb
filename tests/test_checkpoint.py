"""Checkpoints: round trip, atomic writes, and every refusal of load_checkpoint."""

import numpy as np
import pytest
import torch

from pmt_core.features.compression import LogCompression
from pmt_core.features.scattering import ScatteringConfig
from pmt_core.model import checkpoint as checkpoint_module
from pmt_core.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pmt_core.model.config import TrainingConfig
from pmt_core.model.network import PMTConvNet

# The paper's config keeps 74 first-order paths: a small "s1" model that fits it
# (load_checkpoint refuses an n_paths other than the config's).
N_PATHS = 74
CLASSES = ("vibrato", "trill", "tremolo")
CONFIG = ScatteringConfig()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def trained_like_model(seed=0):
    """A model with non-trivial weights and batch-norm statistics."""
    torch.manual_seed(seed)
    model = PMTConvNet(N_PATHS, len(CLASSES))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, N_PATHS, 32) * 2 + 1)  # moves running statistics
    return model.eval()


def fitted_compression():
    rng = np.random.default_rng(0)
    return LogCompression().fit(rng.random((5, N_PATHS, 4)))


def save(path, model=None, **overrides):
    arguments = {
        "scattering_config": CONFIG,
        "class_names": CLASSES,
        "compression": fitted_compression(),
        "input_kind": "s1",
        "training_config": TrainingConfig(),
        "extra": {"note": "unit test"},
    }
    arguments.update(overrides)
    return save_checkpoint(path, model or trained_like_model(), **arguments)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.pt"
    save(path)
    return path


def rewrite(path, edit):
    """Load the raw payload, apply ``edit`` and save it back (to simulate bad files)."""
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)


# --- round trip ---------------------------------------------------------------------


def test_round_trip_gives_the_same_logits_and_metadata(saved):
    model = trained_like_model()
    loaded = load_checkpoint(saved, expected_config=CONFIG, expected_classes=CLASSES, device="cpu")
    x = torch.randn(5, N_PATHS, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert not loaded.model.training
    assert loaded.class_names == CLASSES
    assert loaded.scattering_config == CONFIG
    assert loaded.input_kind == "s1"
    np.testing.assert_array_equal(loaded.compression.mu, fitted_compression().mu)
    metadata = loaded.metadata
    assert metadata["n_paths"] == N_PATHS and metadata["n_classes"] == len(CLASSES)
    assert metadata["scattering_fingerprint"] == CONFIG.fingerprint()
    assert metadata["training_config"] == TrainingConfig().to_dict()
    assert metadata["extra"] == {"note": "unit test"}
    assert metadata["versions"]["torch"] == torch.__version__
    assert "kymatio" in metadata["versions"]


def test_payload_loads_with_weights_only(saved):
    payload = torch.load(saved, weights_only=True)
    assert set(payload) == {"format", "format_version", "state_dict", "metadata"}


# --- atomic writes --------------------------------------------------------------------


def test_failed_write_leaves_previous_checkpoint_intact_and_no_temp_file(saved, monkeypatch):
    before = saved.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        save(saved, trained_like_model(seed=1))
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]
    monkeypatch.undo()
    load_checkpoint(saved, device="cpu")


def test_failed_first_write_leaves_no_file(tmp_path, monkeypatch):
    def failing_save(obj, f, *args, **kwargs):
        raise OSError("simulated")

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(OSError):
        save(tmp_path / "new.pt")
    assert list(tmp_path.iterdir()) == []


# --- refusals at save time --------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_kind": "s2"}, "input_kind"),
        ({"class_names": CLASSES[:2]}, "class names"),
        ({"compression": LogCompression()}, "not fitted"),
        ({"extra": {"bad": object()}}, "JSON"),
    ],
    ids=["input-kind", "class-count", "unfitted-compression", "not-json"],
)
def test_save_refuses_inconsistent_arguments(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        save(tmp_path / "x.pt", **overrides)
    assert not (tmp_path / "x.pt").exists()


def test_save_refuses_compression_of_another_size(tmp_path):
    compression = LogCompression().fit(np.ones((2, N_PATHS + 1, 3)))
    with pytest.raises(ValueError, match="paths"):
        save(tmp_path / "x.pt", compression=compression)


# --- refusals at load time --------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"",
        lambda data: b"not a checkpoint at all",
        lambda data: data[:100] + bytes(200) + data[300:],
    ],
    ids=["truncated", "empty", "garbage", "corrupt-bytes"],
)
def test_unreadable_file(saved, damage):
    saved.write_bytes(damage(saved.read_bytes()))
    with pytest.raises(CheckpointError, match="cannot read checkpoint|lacks|does not fit"):
        load_checkpoint(saved)


def test_pickled_objects_are_refused(tmp_path):
    # A whole pickled module (the authors' torch.save(model)) is not plain data.
    path = tmp_path / "pickled.pt"
    torch.save(trained_like_model(), path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_not_a_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a checkpoint dict"):
        load_checkpoint(path)


@pytest.mark.parametrize("key", ["state_dict", "metadata", "format"])
def test_missing_top_level_key(saved, key):
    rewrite(saved, lambda payload: payload.pop(key))
    with pytest.raises(CheckpointError, match=f"lacks keys.*{key}"):
        load_checkpoint(saved)


@pytest.mark.parametrize("key", ["class_names", "compression", "scattering_config", "n_paths"])
def test_missing_metadata_key(saved, key):
    rewrite(saved, lambda payload: payload["metadata"].pop(key))
    with pytest.raises(CheckpointError, match=f"lacks metadata keys.*{key}"):
        load_checkpoint(saved)


def test_other_scattering_config_names_the_differing_fields(saved):
    expected = ScatteringConfig(J=12, Q=(4, 1))
    with pytest.raises(CheckpointError, match="other scattering settings") as error:
        load_checkpoint(saved, expected_config=expected)
    message = str(error.value)
    assert "J: checkpoint 13, expected 12" in message
    assert "Q: checkpoint [8, 2], expected [4, 1]" in message
    assert "T:" not in message


def test_altered_config_fails_its_fingerprint(saved):
    rewrite(saved, lambda payload: payload["metadata"]["scattering_config"].update(J=12))
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_checkpoint(saved)


@pytest.mark.parametrize(
    "expected",
    [("vibrato", "trill"), ("trill", "vibrato", "tremolo"), ("vibrato", "trill", "tremolo", "x")],
    ids=["fewer", "reordered", "more"],
)
def test_other_class_list(saved, expected):
    with pytest.raises(CheckpointError, match="has classes"):
        load_checkpoint(saved, expected_classes=expected)


def test_state_dict_not_matching_the_class_count(saved):
    def edit(payload):
        payload["metadata"]["n_classes"] = 4
        payload["metadata"]["class_names"] = [*CLASSES, "bisbigliando"]

    rewrite(saved, edit)
    with pytest.raises(CheckpointError, match="does not fit a network with.*n_classes=4"):
        load_checkpoint(saved)


def test_path_count_not_matching_the_config(saved):
    # Checked against the config before a network is built from the stored count.
    rewrite(saved, lambda payload: payload["metadata"].update(n_paths=N_PATHS + 4))
    with pytest.raises(CheckpointError, match=r"n_paths=78, but s1 features .* have 74 paths"):
        load_checkpoint(saved)


def test_class_count_not_matching_outputs(saved):
    rewrite(saved, lambda payload: payload["metadata"].update(class_names=["a", "b"]))
    with pytest.raises(CheckpointError, match="2 classes for 3 outputs"):
        load_checkpoint(saved)


def test_class_names_that_would_drive_a_terminal_are_refused(saved):
    # an escape sequence that clears the screen, a carriage return that forges a line
    for bad in ("\x1b[2Jtrill", "trill\rvibrato (p = 1.000)"):
        rewrite(saved, lambda payload, bad=bad: payload["metadata"].update(
            class_names=[bad, "b", "c"]))
        with pytest.raises(CheckpointError, match="printable") as info:
            load_checkpoint(saved)
        assert "\x1b" not in str(info.value) and "\r" not in str(info.value)


def test_missing_state_dict_entry(saved):
    rewrite(saved, lambda payload: payload["state_dict"].pop("fc2.weight"))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(saved)
