"""No output ever replaces what is not the same kind of output: every directory writer, and the CLI."""
import json
import os

import pytest
import yaml
from helpers import write_tiny_cache, write_tiny_generator, write_tiny_tokenizer

from autonat.errors import AutonatError
from autonat.io.atomic import MARKER, atomic_dir, check_output_dir, output_kind


def _user_folder(path):
    """A folder of a user's own files (a dataset, say)."""
    (path / "cats").mkdir(parents=True)
    (path / "cats" / "tom.png").write_bytes(b"\x89PNG not really")
    (path / "notes.txt").write_text("my notes")
    return path


def _snapshot(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _write_cache(path):
    write_tiny_cache(path)


def _write_tokenizer(path):
    write_tiny_tokenizer(path)


def _write_generator(path):
    import torch

    from autonat.generator.checkpoint import save_generator
    from autonat.generator.uvit import UViT, UViTConfig

    config = UViTConfig(codebook_size=16, grid=(4, 4), num_classes=3, width=32, depth=2, num_heads=2)
    torch.manual_seed(0)
    save_generator(path, UViT(config), config, {"path": "none"})


def _write_digit_classifier(path):
    from autonat.evaluation.digit_classifier import (
        DigitNet,
        DigitTrainConfig,
        save_digit_classifier,
    )

    save_digit_classifier(DigitNet(DigitTrainConfig().net), path, DigitTrainConfig(), {"heldout_accuracy": 0.0})


WRITERS = {"token-cache": _write_cache, "tokenizer": _write_tokenizer, "generator": _write_generator,
           "digit-classifier": _write_digit_classifier}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_writer_refuses_a_users_folder_and_leaves_it_intact(tmp_path, kind):
    folder = _user_folder(tmp_path / "mine")
    before = _snapshot(folder)
    with pytest.raises(AutonatError, match="not an autonat " + kind):
        WRITERS[kind](folder)
    assert _snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no leftovers beside it


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_writer_refuses_a_file_where_its_folder_should_go(tmp_path, kind):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(AutonatError, match="is a file"):
        WRITERS[kind](target)
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing moved aside


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_writer_replaces_its_own_earlier_output_and_marks_it(tmp_path, kind):
    out = tmp_path / "out"
    WRITERS[kind](out)
    assert output_kind(out) == kind
    WRITERS[kind](out)  # the same kind again: replaced
    assert output_kind(out) == kind
    empty = tmp_path / "empty"
    empty.mkdir()
    WRITERS[kind](empty)  # an empty folder holds nothing to lose
    assert output_kind(empty) == kind


@pytest.mark.parametrize("kind,other", [("token-cache", "tokenizer"), ("tokenizer", "generator"),
                                        ("generator", "token-cache"), ("digit-classifier", "tokenizer")])
def test_a_writer_refuses_an_output_of_another_kind(tmp_path, kind, other):
    out = tmp_path / "out"
    WRITERS[other](out)
    before = _snapshot(out)
    with pytest.raises(AutonatError, match=f"holds an autonat {other}, not a {kind}"):
        WRITERS[kind](out)
    assert _snapshot(out) == before


def test_outputs_written_before_markers_are_still_replaced(tmp_path):
    out = tmp_path / "cache"
    write_tiny_cache(out)
    (out / MARKER).unlink()  # as written by an earlier version
    write_tiny_cache(out)
    assert output_kind(out) == "token-cache"
    ckpt = write_tiny_generator(tmp_path / "g")
    (ckpt / MARKER).unlink()
    _write_generator(ckpt)
    assert output_kind(ckpt) == "generator"


def test_a_hugging_face_style_folder_is_not_taken_for_a_checkpoint(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (folder / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(AutonatError, match="not an autonat generator"):
        _write_generator(folder)
    assert (folder / "model.safetensors").read_bytes() == b"weights"


def test_a_read_only_location_is_refused_before_any_work(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(AutonatError, match="permission denied"):
            check_output_dir(ro / "out", "token-cache")
    finally:
        ro.chmod(0o755)


def test_a_file_in_the_parent_path_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(AutonatError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "afile" / "out", "token-cache")


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d", "token-cache") as tmp:
            (tmp / "x").write_text("1")
        from autonat.io.atomic import write_text

        write_text(tmp_path / "f.txt", "hello")
    finally:
        os.umask(old)
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_weight_files_follow_the_umask_too(tmp_path):
    import torch

    from autonat.io.weights import save_safetensors

    old = os.umask(0o022)
    try:  # safetensors itself writes 0600, atomically or straight into a folder
        save_safetensors({"w": torch.zeros(2)}, tmp_path / "a.safetensors")
        save_safetensors({"w": torch.zeros(2)}, tmp_path / "b.safetensors", atomic=False)
    finally:
        os.umask(old)
    for name in ("a", "b"):
        assert (tmp_path / f"{name}.safetensors").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- the command line
def _recipe(tmp_path, folder):
    recipe = {
        "data": {"source": str(folder), "image_size": 8},
        "tokenizer": {"out_dir": str(tmp_path / "tok"), "steps": 2, "batch_size": 4, "restart_every": 10,
                      "vqgan": {"n_embed": 16, "embed_dim": 8, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                                "attn_resolutions": [], "resolution": 8, "z_channels": 8}},
        "cache": str(tmp_path / "cache"),
    }
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    return cfg


@pytest.mark.parametrize("command", ["tokenize", "train-tokenizer"])
def test_cli_out_pointed_at_the_dataset_folder_loses_nothing(tmp_path, tiny_image_folder, capsys, command):
    from autonat.cli.main import main

    cfg = _recipe(tmp_path, tiny_image_folder)
    write_tiny_tokenizer(tmp_path / "tok")
    before = _snapshot(tiny_image_folder)
    args = [command, "--config", str(cfg), "--out", str(tiny_image_folder)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not an autonat" in err
    assert _snapshot(tiny_image_folder) == before


@pytest.mark.parametrize("command", ["tokenize", "train-tokenizer"])
def test_cli_out_pointed_at_a_file_loses_nothing(tmp_path, tiny_image_folder, capsys, command):
    from autonat.cli.main import main

    cfg = _recipe(tmp_path, tiny_image_folder)
    write_tiny_tokenizer(tmp_path / "tok")
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    assert main([command, "--config", str(cfg), "--out", str(notes)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert notes.read_text() == "precious"
    assert not (tmp_path / ".notes.txt.old").exists()
