"""One float-to-uint8 conversion for every written or scored image, and one reading of ``demo:<split>``."""
import numpy as np
import pytest
import torch

from autonat.data.demo import DEMO_SPLITS, demo_split, is_demo_reference
from autonat.data.images import to_uint8, to_uint8_hwc
from autonat.errors import AutonatError


def test_to_uint8_rounds_and_clamps():
    x = torch.tensor([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 1.3]).view(1, 1, 1, 7)
    assert to_uint8(x).flatten().tolist() == [0, 0, 0, 2, 128, 255, 255]  # round half to even, as torch.round
    assert to_uint8(x.bfloat16()).dtype == torch.uint8


def test_the_npz_batch_holds_the_channels_last_conversion(tmp_path):
    from autonat.sampling.outputs import save_npz

    images = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    save_npz(images, np.array([0, 1]), tmp_path / "b.npz")
    with np.load(tmp_path / "b.npz") as z:
        assert z["arr_0"].shape == (2, 5, 4, 3)
        assert np.array_equal(z["arr_0"], to_uint8_hwc(images))
        assert np.array_equal(z["arr_0"], to_uint8(images).permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize("source, demo", [("demo", True), ("demo:train", True), ("demo:nonsense", True),
                                          ("demo.npz", False), ("runs/demo:train", False), ("demos", False)])
def test_what_names_the_demo_digits(source, demo):
    assert is_demo_reference(source) is demo


def test_demo_split_names_the_splits_or_lists_them():
    assert [demo_split(f"demo:{s}") for s in DEMO_SPLITS] == list(DEMO_SPLITS)
    for bad in ("demo", "demo:test"):
        with pytest.raises(AutonatError, match="say which demo digits: demo:train, demo:heldout, demo:all"):
            demo_split(bad)


def test_the_default_feature_extractor_follows_the_same_check():
    from autonat.evaluation.features import default_extractor_name
    from autonat.evaluation.names import DIGITS, INCEPTION

    assert default_extractor_name("demo:heldout") == DIGITS
    assert default_extractor_name("stats/imagenet.npz") == INCEPTION
