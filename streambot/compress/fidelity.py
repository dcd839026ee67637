"""How close a compressed face model stays to its teacher: PSNR and SSIM on the mouth region.

Wav2Lip redraws the lower half of the face crop (the upper half is given), so that is where a
student can differ and where a viewer looks: the mouth region is rows ``[H/2, H)`` of the
96x96 output. Images are float arrays in [0, 1], shaped (B, 3, H, W) as the model emits them.

SSIM is written here (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
per channel, averaged) with SciPy, a core dependency, rather than scikit-image, which only the
tests install; a test checks it against scikit-image's.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

_C1, _C2 = 0.01**2, 0.03**2


def mouth(images: np.ndarray) -> np.ndarray:
    """The lower half of each face crop: (B, C, H, W) -> (B, C, H/2, W)."""
    return images[..., images.shape[-2] // 2 :, :]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all of ``a`` vs ``b`` (values in [0, 1])."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def _ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    def blur(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, sigma=1.5, truncate=3.5, mode="reflect")

    mu_x, mu_y = blur(x), blur(y)
    # sample (N-1) normalisation of the local variances, as Wang et al. and scikit-image do
    n = 11 * 11
    scale = n / (n - 1)
    var_x = scale * (blur(x * x) - mu_x * mu_x)
    var_y = scale * (blur(y * y) - mu_y * mu_y)
    cov = scale * (blur(x * y) - mu_x * mu_y)
    num = (2 * mu_x * mu_y + _C1) * (2 * cov + _C2)
    den = (mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2)
    ssim_map = num / den
    pad = 5  # the window's half width: borders are left out, as scikit-image does
    return float(ssim_map[pad:-pad, pad:-pad].mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of ``a`` vs ``b``, (B, C, H, W) in [0, 1], over every image and channel."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    planes = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    return float(np.mean([_ssim_plane(x, y) for x, y in zip(*planes, strict=True)]))


def mouth_fidelity(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of the student's mouth region against the teacher's."""
    s, t = mouth(student), mouth(teacher)
    return {"mouth_psnr_db": round(psnr(s, t), 3), "mouth_ssim": round(ssim(s, t), 5)}
