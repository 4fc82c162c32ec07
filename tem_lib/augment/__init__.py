"""Augmentation strategies for a data-scarce detector, one contract, picked by name.

``ldm`` (the paper's mask-conditioned LDM), ``inpaint`` (DIAG-style region-guided inpainting
with the same LDM), ``copy_paste`` (Ghiasi et al. 2021) and ``simulator`` (pretraining on
simulated micrographs). See :mod:`tem_lib.augment.base` for the contract.
"""
from .base import STRATEGIES, Augmentation, Cell, get_strategy, register, strategies
from .copy_paste import CopyPaste, CopyPasteConfig
from .ldm import InpaintConfig, LDMAugmentation, LDMAugmentConfig, RegionInpaint
from .sd_inpaint import SDInpaint, SDInpaintConfig
from .simulator import SimulatorAugmentConfig, SimulatorPretraining

__all__ = ["STRATEGIES", "Augmentation", "Cell", "get_strategy", "register", "strategies", "CopyPaste", "CopyPasteConfig",
           "LDMAugmentation", "LDMAugmentConfig", "RegionInpaint", "InpaintConfig", "SimulatorPretraining",
           "SimulatorAugmentConfig", "SDInpaint", "SDInpaintConfig"]
