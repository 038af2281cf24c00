"""Body shapes: Anny phenotypes drawn from Anny's own age-conditioned shape distribution.

    from realtime_hmr.train.shapes import sample_shapes, PHENOTYPES
    sh = sample_shapes(1000, np.random.default_rng(0))   # Shapes: params (N, 6) in PHENOTYPES order, age_years (N,)

``anny.shape_distribution.SimpleShapeDistribution`` draws a morphological age in years (here uniform over
``age_years``, default 3 to 90: children to elderly), a gender uniform in [0, 1] (Anny: 0 male, 1 female; the
calibration uses the boys' tables at <= 0.5 and the girls' above, so both genders are equally likely), and height,
weight, muscle and proportions from WHO-calibrated laws conditioned on age and gender. It is deterministic here:
its torch draws run under a seed taken from ``rng``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")  # anny's phenotype order


@dataclass
class Shapes:
    params: np.ndarray  # (N, 6) float32 in [0, 1], PHENOTYPES order
    age_years: np.ndarray  # (N,) float32 morphological age the sample was drawn at

    def __len__(self) -> int:
        return len(self.params)

    def as_kwargs(self) -> dict[str, np.ndarray]:
        """Phenotype dict (name -> (N,) array) as anny's forward takes it (wrap in torch tensors)."""
        return {k: self.params[:, i] for i, k in enumerate(PHENOTYPES)}


def sample_shapes(n: int, rng: np.random.Generator, age_years: tuple[float, float] = (3.0, 90.0)) -> Shapes:
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    shim = SimpleNamespace(dtype=torch.float64, device=torch.device("cpu"), phenotype_labels=list(PHENOTYPES))
    lo, hi = (torch.tensor(float(a), dtype=torch.float64) for a in age_years)
    dist = SimpleShapeDistribution(shim, morphological_age_distribution=torch.distributions.Uniform(lo, hi))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(0, 2**62)))
        years, kw = dist.sample(n)
    params = np.stack([kw[k].numpy() for k in PHENOTYPES], axis=1).clip(0.0, 1.0)
    return Shapes(params.astype(np.float32), years.numpy().astype(np.float32))


class AnnyBetas:
    """``AnnyBetas(body, model)(coeffs)``: betas (n, n_betas) of the bodies that blendshape coefficients (n, K) of the
    installed Anny ``model`` give: their rest meshes (Anny's template plus the blendshapes) less the body's template,
    least squares on its shape directions. In vertex space, so it holds whatever basis this Anny build compacted its
    phenotype blendshapes into (the asset's coefficient map, ``shape_coeff_*``, is in the basis of the build it came
    from). The projection is solved once, so a call costs a (n, K) x (K, n_betas) product."""

    def __init__(self, body, model):
        blend = model.blendshapes.double().numpy().reshape(len(model.blendshapes), -1)
        template = np.asarray(body.template, np.float64).reshape(-1)
        offset = model.template_vertices.double().numpy().reshape(-1) - template
        dirs = body.shape_dirs.reshape(body.n_betas, -1)
        sol = np.linalg.lstsq(dirs.T, np.concatenate([blend, offset[None]]).T, rcond=None)[0].T  # (K + 1, n_betas)
        self.proj, self.offset = sol[:-1], sol[-1]

    def __call__(self, coeffs: np.ndarray) -> np.ndarray:
        return np.asarray(coeffs, np.float64) @ self.proj + self.offset
