"""tem_lib: mask-conditioned diffusion augmentation for TEM defect detection.

Companion library of Li et al. (2026), "Improving Combined Detection and Classification of
TEM Defects via Mask-Conditioned Latent Diffusion Augmentation". Notebooks in
``notebooks/`` call into it; ``./run_all.sh`` runs them all.
"""
__version__ = "0.1.0"
