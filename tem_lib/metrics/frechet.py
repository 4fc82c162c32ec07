"""Frechet distance between image sets in a FIXED, offline feature space.

FID needs Inception weights, which cannot be fetched here; a randomly initialised network
would change with the torch version. ``texture_features`` is therefore hand-made and frozen:
64 numbers per grayscale image that describe what separates TEM micrographs:

* intensity: mean, std and the 1/5/25/50/75/95/99 % quantiles (9);
* texture spectrum: the radially averaged log power spectrum in 12 log-spaced bands,
  minus its mean (12);
* edges: 10/50/90 % quantiles of the gradient magnitude at Gaussian scales 1, 2, 4 px (9);
* blobs: 0.1/1/5/50 % quantiles of the scale-normalised Laplacian of Gaussian at scales
  1, 2, 4, 8 px (16; the low quantiles are dark spots: black dots and loops);
* local patterns: uniform LBP histograms with (P, R) = (8, 1) and (8, 3) (2 x 9 = 18).

The same extractor is used for every run, so numbers compare across runs and across versions
of this package with the same ``FEATURES_VERSION``. They do not compare with Inception FID;
``inception_features`` gives that where torchvision's weights are in the local cache.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg, ndimage
from skimage.feature import local_binary_pattern

FEATURES_VERSION = 1
N_FEATURES = 64
# column ranges of the feature groups, for a breakdown of what makes two sets differ
GROUPS = {"intensity": slice(0, 9), "spectrum": slice(9, 21), "edges": slice(21, 30),
          "blobs": slice(30, 46), "local patterns": slice(46, 64)}


def _radial_spectrum(img: np.ndarray, n_bins: int = 12) -> np.ndarray:
    h, w = img.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    p = np.abs(np.fft.fftshift(np.fft.fft2((img - img.mean()) * win))) ** 2
    yy, xx = np.indices(p.shape)
    r = np.hypot(yy - h / 2, xx - w / 2) / (min(h, w) / 2)
    edges = np.geomspace(2 / min(h, w), 1.0, n_bins + 1)
    idx = np.digitize(r.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < n_bins)
    sums = np.bincount(idx[ok], p.ravel()[ok], n_bins)
    counts = np.maximum(np.bincount(idx[ok], minlength=n_bins), 1)
    s = np.log(sums / counts + 1e-12)
    return s - s.mean()


def texture_features(images) -> np.ndarray:
    """float64 [N, 64] features of grayscale images (float [H, W] in [0, 1], any size >= 32)."""
    out = []
    for img in images:
        img = np.asarray(img, dtype=np.float64)
        if img.ndim != 2 or min(img.shape) < 32:
            raise ValueError(f"texture_features needs 2-D images of at least 32 px, got shape {img.shape}")
        f = [img.mean(), img.std(), *np.quantile(img, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])]
        f += list(_radial_spectrum(img))
        for s in (1, 2, 4):
            f += list(np.quantile(ndimage.gaussian_gradient_magnitude(img, s) * s, [0.1, 0.5, 0.9]))
        for s in (1, 2, 4, 8):
            f += list(np.quantile(ndimage.gaussian_laplace(img, s) * s * s, [0.001, 0.01, 0.05, 0.5]))
        u8 = np.clip(img * 255, 0, 255).astype(np.uint8)
        for radius in (1, 3):
            lbp = local_binary_pattern(u8, 8, radius, method="uniform")
            f += list(np.bincount(lbp.astype(int).ravel(), minlength=10)[:9] / lbp.size)
        out.append(f)
    feats = np.asarray(out, dtype=np.float64)
    assert feats.shape[1] == N_FEATURES
    return feats


def frechet_distance(a: np.ndarray, b: np.ndarray, reference: np.ndarray | None = None) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` [N, D] and ``b`` [M, D].

    Features are standardised by the mean and std of ``reference`` (default: ``a`` and ``b``
    pooled) so that no feature dominates by its units; pass the same ``reference`` (e.g. the
    real test crops) to every comparison that must share a scale.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Frechet distance needs at least 2 items per set, got {len(a)} and {len(b)}")
    ref = np.concatenate([a, b]) if reference is None else np.asarray(reference, float)
    mu, sd = ref.mean(0), ref.std(0) + 1e-8
    a, b = (a - mu) / sd, (b - mu) / sd
    m1, m2 = a.mean(0), b.mean(0)
    c1, c2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(c1 @ c2)
    if not np.isfinite(covmean).all():  # near-singular product: regularise, as pytorch-fid does
        eps = np.eye(len(c1)) * 1e-6
        covmean = linalg.sqrtm((c1 + eps) @ (c2 + eps))
    covmean = covmean.real
    return float(((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))


def kernel_distance(a: np.ndarray, b: np.ndarray, reference: np.ndarray | None = None, subsets: int = 50,
                    subset_size: int = 100, seed: int = 0) -> tuple[float, float]:
    """Kernel distance (KID, Binkowski et al. 2018): the unbiased MMD^2 with the polynomial
    kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets of ``subset_size`` (capped
    at the smaller set); returns (mean, std over subsets). Standardised like
    :func:`frechet_distance`. Unlike the Frechet distance it is unbiased for small sets, so it
    compares sets of a few dozen images fairly; 0 means indistinguishable."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"kernel distance needs at least 2 items per set, got {len(a)} and {len(b)}")
    ref = np.concatenate([a, b]) if reference is None else np.asarray(reference, float)
    mu, sd = ref.mean(0), ref.std(0) + 1e-8
    a, b = (a - mu) / sd, (b - mu) / sd
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2 * kxy.mean())
    return float(np.mean(vals)), float(np.std(vals))


def frechet_by_group(a: np.ndarray, b: np.ndarray, reference: np.ndarray | None = None) -> dict:
    """``frechet_distance`` on all features (key ``"all"``) and on each of :data:`GROUPS`
    alone: which aspect of the images (intensity, spectrum, edges, blobs, local patterns)
    makes the two sets differ."""
    ref = np.concatenate([a, b]) if reference is None else np.asarray(reference, float)
    out = {"all": frechet_distance(a, b, ref)}
    for name, cols in GROUPS.items():
        out[name] = frechet_distance(np.asarray(a)[:, cols], np.asarray(b)[:, cols], ref[:, cols])
    return out


def inception_features(images, device="cpu", batch_size: int = 32) -> np.ndarray:
    """[N, 2048] pool features of torchvision's ImageNet Inception-v3 (the usual FID space,
    though not the exact TF-FID weights). Needs the weights in the torch hub cache or internet;
    offline without them it raises ``RuntimeError`` saying so."""
    import torch
    from torch.nn import functional as F
    from torchvision.models import Inception_V3_Weights, inception_v3
    try:
        net = inception_v3(weights=Inception_V3_Weights.IMAGENET1K_V1, aux_logits=True)
    except Exception as e:  # noqa: BLE001 - URLError, HTTPError, ...
        raise RuntimeError(f"Inception-v3 weights are not in the torch hub cache ({torch.hub.get_dir()}) and "
                           f"could not be downloaded ({type(e).__name__}: {e}); use texture_features "
                           "offline") from e
    net.fc = torch.nn.Identity()
    net.eval().to(device)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.as_tensor(np.stack(images[i:i + batch_size]), dtype=torch.float32)[:, None]
            x = F.interpolate(x.repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear", align_corners=False)
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            out.append(net(((x - mean) / std).to(device)).cpu().numpy())
    return np.concatenate(out)
