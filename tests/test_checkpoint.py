import io

import pytest
import torch

from model import CheckpointError, DiffGMM, DiffGMMConfig, make_checkpoint
from pipeline.core.checkpoints import export_checkpoint, load_model, save_checkpoint

SMALL = DiffGMMConfig(hidden_channels=8, depth=2, bottleneck_blocks=1, feature_channels=8)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = DiffGMM(SMALL).eval()
    path = str(tmp_path / "m.pt")
    save_checkpoint(make_checkpoint(model, {"step": 3}), path)
    return model, path


def test_round_trip_is_bit_exact(saved):
    model, path = saved
    loaded = load_model(path)
    assert loaded.metadata == {"step": 3}
    assert loaded.model.config == SMALL
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(2, 3001)
    assert torch.equal(model.enhance(x)[0], loaded.model.enhance(x)[0])
    assert loaded.model_id.startswith("diffgmm-")


def _rewrite(path, edit):
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)


def test_tampered_weights_are_refused(saved):
    _, path = saved

    def bump(ckpt):
        ckpt["state_dict"]["head.bias"] += 0.01

    _rewrite(path, bump)
    with pytest.raises(CheckpointError, match=r"m\.pt.*SHA-256"):
        load_model(path)


def test_wrong_version_is_refused(saved):
    _, path = saved
    _rewrite(path, lambda c: c.update(format_version=99))
    with pytest.raises(CheckpointError, match=r"m\.pt.*format version 99"):
        load_model(path)


def test_truncated_file_is_refused(saved):
    _, path = saved
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"m\.pt.*cannot be read"):
        load_model(path)


def test_pickled_class_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    torch.save({"x": io.StringIO("not allowed")}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_model(str(path))


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt.*not found"):
        load_model(str(tmp_path / "nope.pt"))


def test_config_with_unknown_key_is_refused(saved):
    _, path = saved

    def add_key(ckpt):
        ckpt["model_config"]["bogus"] = 1

    _rewrite(path, add_key)
    with pytest.raises(CheckpointError, match="bogus"):
        load_model(path)


def test_export_drops_optimizer_state(saved, tmp_path):
    model, path = saved
    ckpt = make_checkpoint(model, {"optimizer": {"lr": 1.0}, "step": 9})
    save_checkpoint(ckpt, path)
    model_id, size = export_checkpoint(path, str(tmp_path / "export.pt"))
    loaded = load_model(str(tmp_path / "export.pt"))
    assert "optimizer" not in loaded.metadata and loaded.metadata["step"] == 9
    assert loaded.model_id == model_id and size > 0


def test_default_checkpoint_ships_and_loads():
    loaded = load_model()
    assert loaded.model.config.sample_rate == 16000
    assert loaded.metadata.get("val"), "the shipped checkpoint records its validation numbers"
