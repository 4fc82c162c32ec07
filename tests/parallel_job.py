"""A tiny LDM-trainer run and a tiny detector run, for `accelerate launch` (tests/test_parallel.py).

    accelerate launch --cpu --num_processes N tests/parallel_job.py OUT_DIR
writes OUT_DIR/fit.safetensors and OUT_DIR/detector/ (main process only) and, per process,
OUT_DIR/rank<r>.json with a checksum of its weights after training."""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from tem_lib import parallel
from tem_lib.detection import train_detector
from tem_lib.ldm.config import TrainConfig
from tem_lib.ldm.loop import fit
from tem_lib.simulate import preset, simulate


def main(out: Path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = torch.linspace(-1, 1, 64).reshape(16, 4)

    def loss_fn(step, gen):
        x = data[torch.randint(16, (4,), generator=gen)]
        return ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
    fit({"m": model}, loss_fn, TrainConfig(steps=6, batch_size=4, checkpoint_every=3, warmup_steps=1, ema_decay=0),
        out / "fit", {"what": "toy"}, "cpu")
    samples = list(simulate(preset(height=128, width=128), 2, seed=1, workers=1))
    det, _ = train_detector(samples, out / "detector", {"fpn_channels": 16, "representation_size": 32,
                                                         "mask_head_channels": 16},
                            {"epochs": 1, "iters_per_epoch": 2, "batch_size": 1, "warmup_iters": 1},
                            class_ids=(1, 2, 3), progress=False)
    rank, n = parallel.world()
    if rank == 0:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "fit.safetensors")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "n": n, "fit": float(sum(p.detach().double().sum() for p in model.parameters())),
        "detector": float(sum(p.detach().double().abs().sum() for p in det.parameters()))}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
