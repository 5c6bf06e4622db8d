"""The command line end to end on tiny data: train-tokenizer, tokenize, train, sample."""
import numpy as np
import pytest
import yaml
from PIL import Image

from autonat.cli.main import main


def _recipe(tmp_path, folder):
    return {
        "data": {"source": str(folder), "image_size": 8},
        "tokenizer": {"out_dir": str(tmp_path / "tok"), "steps": 20, "batch_size": 8, "restart_every": 10,
                      "vqgan": {"n_embed": 16, "embed_dim": 8, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                                "attn_resolutions": [], "resolution": 8, "z_channels": 8}},
        "cache": str(tmp_path / "cache"),
        "model": {"width": 32, "depth": 2, "num_heads": 2},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"out_dir": str(tmp_path / "run"), "steps": 6, "batch_size": 6, "checkpoint_every": 3,
                  "log_every": 3},
    }


@pytest.mark.slow
def test_cli_end_to_end(tmp_path, tiny_image_folder, capsys):
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(_recipe(tmp_path, tiny_image_folder)))
    assert main(["train-tokenizer", "--config", str(cfg)]) == 0
    assert main(["tokenize", "--config", str(cfg)]) == 0
    assert main(["train", "--config", str(cfg), "train.steps=6"]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "step_6"
    grid, npz = tmp_path / "grid.png", tmp_path / "s.npz"
    assert main(["sample", "--checkpoint", str(ckpt), "--steps", "3", "--per-class", "2", "--classes", "0", "2",
                 "--out", str(grid), "--npz", str(npz), "--png-dir", str(tmp_path / "pngs")]) == 0
    assert Image.open(grid).size[0] > 16
    data = np.load(npz)
    assert data["arr_0"].shape == (4, 8, 8, 3) and data["arr_0"].dtype == np.uint8
    assert data["arr_1"].tolist() == [0, 0, 2, 2]
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 4


@pytest.mark.parametrize("argv, message", [
    (["sample", "--checkpoint", "nowhere"], "not a generator checkpoint"),
    (["train", "--config", "missing.yaml"], "config file not found"),
])
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("autonat: error:")


def test_sample_rejects_out_of_range_class(tmp_path, tiny_image_folder, capsys):
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(_recipe(tmp_path, tiny_image_folder)))
    for cmd in ("train-tokenizer", "tokenize", "train"):
        assert main([cmd, "--config", str(cfg)]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "step_6"
    assert main(["sample", "--checkpoint", str(ckpt), "--classes", "5", "--out", str(tmp_path / "g.png")]) == 2
    assert "out of range" in capsys.readouterr().err
