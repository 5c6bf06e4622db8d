"""The ImageNet recipes and the ADM reference batch that FID on ImageNet 256 is scored against."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from autonat.evaluation.features import INCEPTION
from autonat.evaluation.reference import choose_extractor, load_reference
from autonat.training.recipe import load_recipe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_s_and_l_recipes_share_data_masking_and_optimiser_and_differ_in_size():
    s, l_ = (load_recipe(CONFIGS / f"imagenet256_autonat_{n}.yaml") for n in ("s", "l"))
    assert s.data == l_.data and s.cache == l_.cache
    assert (l_.data.image_size, l_.data.hflip, l_.data.resize) == (256, True, "adm")
    assert s.masking == l_.masking and (l_.masking.alpha, l_.masking.beta, l_.masking.p_uncond) == (12.0, 3.0, 0.15)
    assert s.optim == l_.optim and (l_.optim.lr, tuple(l_.optim.betas), l_.optim.weight_decay) == (4e-4, (0.99, 0.99),
                                                                                                    0.03)
    assert (s.model.size, l_.model.size) == ("autonat-s", "autonat-l")
    assert (l_.train.steps, l_.train.batch_size, l_.train.checkpoint_every, l_.train.log_every) == (500000, 2048,
                                                                                                  5000, 50)
    assert s.train.out_dir != l_.train.out_dir


def test_the_adm_reference_batch_loads_its_mu_and_sigma_as_reference_statistics(tmp_path):
    """VIRTUAL_imagenet256_labeled.npz's layout: arr_0 (uint8 N x 256 x 256 x 3), mu, sigma (2048-d pool
    features), mu_s, sigma_s (spatial features); no record of the extractor, so ``auto`` means Inception."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=2048)
    a = rng.normal(size=(2048, 64))
    sigma = a @ a.T / 64
    path = tmp_path / "VIRTUAL_imagenet256_labeled.npz"
    np.savez(path, arr_0=rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8), mu=mu, sigma=sigma,
             mu_s=rng.normal(size=2023), sigma_s=np.eye(2023, dtype=np.float32))
    assert choose_extractor("auto", path) == INCEPTION
    inception = SimpleNamespace(name=INCEPTION, feature_dim=lambda metric="fid": 2048)  # its width, no weights
    reference = load_reference(path, inception)
    assert reference.kind == "statistics" and reference.extractor is None
    np.testing.assert_array_equal(reference.mu, mu)
    np.testing.assert_array_equal(reference.sigma, sigma)
