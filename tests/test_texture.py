"""First-stage texture: the fitted residual noise model and the patch discriminator."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from tem_lib.ldm.adversarial import PatchDiscriminator, adversarial_loss, hinge_d_loss
from tem_lib.ldm.noise import ResidualNoise
from tem_lib.stats import noise_stats


def anisotropic_noise(rng, shape, sigma_yx):
    n = ndimage.gaussian_filter(rng.standard_normal(shape), (0, *sigma_yx))
    return n / n.std()


def test_residual_noise_recovers_gray_level_dependence_and_anisotropy():
    """Residuals whose spread grows with the gray level and which are correlated along x only:
    the fitted model's samples have the same spread at each level and the same direction."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.2, 0.8, 64)[None, None, :].repeat(64, 1).repeat(24, 0)  # bright to the right
    spread = lambda g: 0.01 + 0.05 * g  # noqa: E731
    rec = ramp
    images = rec + spread(rec) * anisotropic_noise(rng, rec.shape, (0.01, 1.5))
    model = ResidualNoise(size=32, n_levels=6).fit(images, rec)
    np.testing.assert_allclose(model.sigma.numpy(), spread(model.levels.numpy()), rtol=0.15)
    noisy = model.add(rec, seed=1)
    fitted, truth = noise_stats((noisy - rec)[0] + 0.5), noise_stats((images - rec)[0] + 0.5)
    assert fitted["noise_corr_x"] == pytest.approx(truth["noise_corr_x"], abs=0.1)
    assert fitted["noise_corr_y"] == pytest.approx(truth["noise_corr_y"], abs=0.1)
    assert fitted["noise_corr_x"] > 0.5 > abs(fitted["noise_corr_y"])
    left, right = (noisy - rec)[:, :, :8].std(), (noisy - rec)[:, :, -8:].std()
    assert right / left == pytest.approx(spread(0.8) / spread(0.2), rel=0.25)


def test_residual_noise_is_reproducible_and_off_when_unfitted_or_none():
    rng = np.random.default_rng(1)
    rec = np.full((4, 64, 64), 0.5)
    images = rec + 0.03 * rng.standard_normal(rec.shape)
    model = ResidualNoise(size=16).fit(images, rec)
    np.testing.assert_array_equal(model.add(rec, seed=3), model.add(rec, seed=3))
    assert not np.array_equal(model.add(rec, seed=3), model.add(rec, seed=4))
    assert (model.add(rec, seed=3) - rec).std() == pytest.approx(0.03, rel=0.15)
    np.testing.assert_array_equal(ResidualNoise(size=16).add(rec), rec.astype(np.float32))
    with pytest.raises(ValueError, match="noise model kind"):
        ResidualNoise(kind="gaussian")
    with pytest.raises(ValueError, match="larger than the crops"):
        ResidualNoise(size=128).fit(images, rec)


def test_adversarial_terms_train_each_network_only_on_its_own_loss():
    """One backward pass of (reconstruction + weighted generator term + discriminator hinge):
    the discriminator's gradient is that of the hinge loss alone, the decoder's last layer gets
    the generator term too."""
    torch.manual_seed(0)
    disc = PatchDiscriminator(channels=8, n_layers=2)
    last = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    rec = last(x + 0.1 * torch.randn_like(x))
    rec_loss = (rec - x).abs().mean()
    g_rec = torch.autograd.grad(rec_loss, last.weight, retain_graph=True)[0]
    total, logs = adversarial_loss(disc, x, rec, rec_loss, last.weight, weight=0.5)
    (rec_loss + total).backward()
    got = [p.grad.clone() for p in disc.parameters()]
    disc.zero_grad()
    hinge_d_loss(disc(x), disc(rec.detach())).backward()
    for g, p in zip(got, disc.parameters()):
        torch.testing.assert_close(g, p.grad)
    assert logs["adaptive_weight"] > 0
    assert not torch.allclose(last.weight.grad, g_rec)  # the generator term moved the decoder too
