"""The one weights writer and reader: atomic safetensors out, plain tensors in."""
import pytest
import safetensors.torch
import torch

from autonat.errors import AutonatError
from autonat.io.weights import read_state_dict, save_safetensors


def test_shared_and_strided_tensors_are_written_as_plain_copies(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"weight": base, "tied": base, "column": base[:, 1], "grad": base.clone().requires_grad_()}
    save_safetensors(state, tmp_path / "w.safetensors")
    back = read_state_dict(tmp_path / "w.safetensors")
    assert sorted(back) == sorted(state)
    assert all(torch.equal(back[k], v.detach()) for k, v in state.items())
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left behind


def test_a_failing_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_safetensors({"w": torch.zeros(2)}, path)

    def broken(tensors, filename, metadata=None):
        open(filename, "wb").write(b"half")
        raise OSError("device went away")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="device went away"):
        save_safetensors({"w": torch.ones(2)}, path)
    assert torch.equal(read_state_dict(path)["w"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_inside_an_atomic_folder_the_file_is_written_in_place(tmp_path):
    save_safetensors({"w": torch.ones(3)}, tmp_path / "model.safetensors", atomic=False)
    assert torch.equal(read_state_dict(tmp_path / "model.safetensors")["w"], torch.ones(3))


def test_wrapped_and_prefixed_pickles_read_as_plain_state_dicts(tmp_path):
    torch.save({"state_dict": {"module.a": torch.ones(1), "module.b": torch.zeros(2)}, "epoch": 3}, tmp_path / "x.pth")
    assert sorted(read_state_dict(tmp_path / "x.pth")) == ["a", "b"]
    with pytest.raises(AutonatError, match="weights file not found"):
        read_state_dict(tmp_path / "missing.pth")
