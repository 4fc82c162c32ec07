"""Where artifacts live, named in one place: the stages of a work folder (``Workspace.path``:
``work_dir/<stage>/split<s>/n<N>/...``) and the folders and files inside them that the study,
the strategies, the detectors and the notebooks use. Nobody else assembles these names."""
from __future__ import annotations

# Artifact stages and what they hold (work_dir/<stage>/split<s>/n<N>/...)
STAGES = {
    "priors": "mask priors fitted on the (split, N) training crops (notebook 02)",
    "ldm": "the (split, N) generator: autoencoder, denoiser, pipeline (the sweep)",
    "strategies": "what another augmentation strategy trains per (split, N): strategies/split<s>/n<N>/<name>",
    "synthetic": "synthetic image-mask pools drawn by the (split, N) generator (the sweep)",
    "detector": "one folder per detector run: weights, history, predictions, metrics (the sweep)",
    "rows": "one JSON result row per sweep run",
    "unet": "the U-Net confidence study (notebook 08): pretrained encoder, one folder per model, rows",
    "models": "portable detectors for tem_lib.quantify (models/best: the sweep's best by validation headline)",
    "label": "notebook 10's demo: held-out micrographs as images, and their label_assist/ folder",
    "quantify": "the best detector applied to whole held-out micrographs (notebook 09)",
}

# the labelling tool's folder inside a user's data folder (tem_lib.label): saved labels, journals
LABEL_ASSIST = "label_assist"

# files of a trained model folder (detectors, U-Nets) and of a training in progress
WEIGHTS = "model.safetensors"
DETECTOR_META = "detector.json"
HISTORY = "history.csv"
CHECKPOINT = "checkpoint"
# files of a detector run (tem_lib.detection.experiment.run_condition)
PREDICTIONS = "predictions.json"
VAL_PREDICTIONS = "val_predictions.json"


def tta_predictions_file(views: int, view_score: float = 0.05) -> str:
    """A detector's validation predictions made in ``views`` symmetries (tem_lib.quantify.tta),
    each view keeping detections down to ``view_score``."""
    return f"val_predictions_tta{int(views)}.json" if view_score == 0.05 else \
        f"val_predictions_tta{int(views)}_v{round(view_score * 100):02d}.json"



METRICS = "metrics.json"
# a dataset folder's record (tem_lib.data.write_dataset; a synthetic pool's is how it was made)
DATASET_META = "metadata.json"
# a checkpoint's state (step, RNG states, config) beside its tensors (tem_lib.checkpoint)
CHECKPOINT_STATE = "state.json"
# a trained U-Net's settings and run record (tem_lib.segmentation.unet)
SEG_CONFIG = "seg_config.json"
# what a quantify output folder holds: options, thresholds, the files of the run (tem_lib.quantify)
QUANTIFY_RECORD = "run.json"
# the model card of a portable detector (tem_lib.quantify)
MODEL_CARD = "model.json"
# a generator's diffusers pipeline, inside its folder
PIPELINE = "pipeline"


def split_folder(split: int) -> str:
    """A split's folder inside a stage: ``split<s>``."""
    return f"split{int(split)}"


def generator_folder(config_hash: str) -> str:
    """The (split, N) generator of one resolved LDM configuration."""
    return f"ldm-{config_hash[:8]}"


def run_folder(run_id: str, settings_hash: str) -> str:
    """A sweep run's detector: its id and the hash of the settings it was made with."""
    return f"{run_id}-{settings_hash[:8]}"


def row_file(run_id: str) -> str:
    return f"{run_id}.json"


def pool_folder(augment: str, prior: str, size: int, key: str, prior_hash: str) -> str:
    """A strategy's pool for one cell: strategy, prior kind, size, config key, prior file hash."""
    return f"{augment}_{prior}_{size}_cfg-{key}_prior-{prior_hash}"


def shared_pool_folder(augment: str, key: str) -> str:
    """A pool made once for the whole study (e.g. simulated micrographs to pretrain on)."""
    return f"{augment}_cfg-{key}"


def pretrain_folder(augment: str, key: str, seed: int) -> str:
    """The detector a ``use: "pretrain"`` strategy trains on its pool, per seed."""
    return f"pretrain-{augment}-{key}-seed{seed}"
