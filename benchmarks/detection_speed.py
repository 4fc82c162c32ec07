"""Mask R-CNN throughput: tem_lib's engine against a plain torchvision-reference loop.

The same model (quick-profile detector, or ``--paper`` for R50-FPN at 800 px), the same
simulated 256-px crops and batch size. Training: ``tem_lib.detection.train_one_epoch`` on
``DetectionDataset`` (random flips/turns, a loss check every step, per-iteration records)
against the loop of torchvision's ``references/detection/engine.py`` reduced to its core
(DataLoader, ``sum(loss_dict.values())``, backward, SGD step). Inference:
``tem_lib.detection.evaluate`` (which also binarises and crops every mask into a
``Detections``) against bare ``model(images)``. The two alternate in rounds, so machine
noise hits both; the ratio is the number to read. Peak memory: resident set size (CPU) or
``torch.cuda.max_memory_allocated`` (GPU).

    python benchmarks/detection_speed.py [--iters 20] [--rounds 3] [--device auto] [--paper]
"""
import argparse
import resource
import time

import pandas as pd
import torch

from tem_lib.data import tile_dataset
from tem_lib.data.torch_dataset import DetectionDataset, collate
from tem_lib.detection import DetectorConfig, build_maskrcnn, evaluate, train_one_epoch
from tem_lib.simulate import preset, simulate
from tem_lib.utils import get_device

from _common import write_results

PAPER = {"backbone": "resnet50", "fpn_channels": 256, "representation_size": 1024, "mask_head_channels": 256,
         "pretrained": "none", "trainable_layers": 3, "min_size": [800], "max_size": 1333}


def peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_train(model, optimizer, loader, device):
    """torchvision references/detection/engine.py train_one_epoch, without its logging."""
    model.train()
    for images, targets in loader:
        images = [im.to(device) for im in images]
        targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
        loss_dict = model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()


@torch.inference_mode()
def reference_predict(model, images, device, batch):
    model.eval()
    for i in range(0, len(images), batch):
        model([torch.as_tensor(im)[None].to(device) for im in images[i:i + batch]])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20, help="training iterations per round and variant")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--n-predict", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--paper", action="store_true", help="R50-FPN at 800 px (the paper's detector)")
    args = ap.parse_args()
    device = get_device(args.device)
    crops = tile_dataset(simulate(preset(height=1024, width=1024), 4, seed=0, workers=1), 256)
    cfg = DetectorConfig(**(PAPER if args.paper else {"pretrained": "none"}))
    torch.manual_seed(0)
    model = build_maskrcnn(cfg, (1, 2, 3)).to(device)  # the simulator's three classes
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    ds = DetectionDataset(crops, augment=True, generator=g)

    def loader():
        idx = torch.randint(len(ds), (args.iters * args.batch,), generator=g).tolist()
        return torch.utils.data.DataLoader(ds, batch_size=args.batch, sampler=idx, collate_fn=collate)

    images = [c.image for c in crops[:args.n_predict]]
    rows = []
    for r in range(args.rounds):
        for variant in ("reference", "tem_lib"):
            sync(device)
            t0 = time.perf_counter()
            if variant == "reference":
                reference_train(model, optimizer, loader(), device)
            else:
                train_one_epoch(model, optimizer, loader(), device, r, progress=False)
            sync(device)
            rows.append({"round": r, "task": "train", "variant": variant,
                         "images_per_s": args.iters * args.batch / (time.perf_counter() - t0)})
            t0 = time.perf_counter()
            if variant == "reference":
                reference_predict(model, images, device, args.batch)
            else:
                evaluate(model, crops[:args.n_predict], device, args.batch, progress=False)
            sync(device)
            rows.append({"round": r, "task": "predict", "variant": variant,
                         "images_per_s": len(images) / (time.perf_counter() - t0)})
    df = pd.DataFrame(rows)
    summary = df[df["round"] > 0] if args.rounds > 1 else df  # round 0 warms up
    table = summary.groupby(["task", "variant"])["images_per_s"].median().unstack().reset_index()
    table["ratio_tem_lib_to_reference"] = table["tem_lib"] / table["reference"]
    peak = peak_mb(device)
    notes = f"""
Detector: {'R50-FPN, 800 px (the paper)' if args.paper else 'quick profile (ResNet-18 FPN, 64 channels, 256 px)'},
from scratch, batch {args.batch}, device {device}; {args.iters} training iterations and
{len(images)} predicted crops per round, {args.rounds} rounds alternating the variants, median of
rounds 2.. (round 1 warms up). Peak memory of the process: {peak:.0f} MB
({'GPU allocated' if device.type == 'cuda' else 'resident set size'}).
A ratio near 1 means tem_lib's engine (loss checks, records, progress, mask post-processing) costs
nothing measurable next to the model itself.
"""
    write_results("detection_speed", {"rounds": df.to_dict(orient="records"), "table": table.to_dict(orient="records"),
                                      "peak_memory_mb": peak, "device": str(device), "paper": args.paper,
                                      "batch": args.batch, "iters": args.iters},
                  table.round(3), notes)


if __name__ == "__main__":
    main()
