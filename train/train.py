"""Train one variant of the byte LM of ``model.py`` on the standard-library corpus.

    python train/train.py --variant relu2_learned --corpus corpus.npz --out runs/
    python train/train.py --variant softmax --small --steps 50 --out runs/   # CPU smoke run

Every variant sees the same batches in the same order (``--seed``) for the same number of
steps; they differ only in the attention rule (``VARIANTS``). Writes, and rewrites at every
evaluation (so that a run stopped early leaves its last state):

- ``<out>/<variant>.npz``: the weights (float16 matrices, b per head in float32), the config
  and the run's metadata as JSON strings (``hsr_lab.data.relu_lm`` reads it);
- ``<out>/<variant>.jsonl``: one JSON line per evaluation (loss, validation bits per byte,
  b, share of active keys, empty rows and score RMS per layer and head, throughput).

The corpus: ``--corpus`` an .npz with ``train`` and ``heldout`` uint8 streams written by
``python -m hsr_lab.data.pystdlib corpus.npz``; without it, built here from this Python's
standard library (hsr_lab must then be importable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: model.py beside it
from model import ByteLM, Config, export

VARIANTS = {
    "softmax": dict(attention="softmax"),
    "relu2_learned": dict(attention="relu", alpha=2, threshold="learned"),
    "relu2_paper": dict(attention="relu", alpha=2, threshold="paper"),
    "relu1_learned": dict(attention="relu", alpha=1, threshold="learned"),
}
SMALL = dict(d_model=64, n_layers=2, n_heads=1, ffn=192, context=256)  # a CPU-sized model


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    p.add_argument("--corpus", type=Path, help="npz with train/heldout (else built here)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16, help="sequences per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ramp", type=float, default=0.3,
                   help="share of the steps over which the paper's b ramps in from 0")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--eval-windows", type=int, default=32)
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the initialisation, the batch order and the calibration batch")
    p.add_argument("--eval-seed", type=int, default=None,
                   help="seeds the choice of held-out windows (default: seed + 1), so that "
                        "runs of different seeds can be validated on the same windows")
    p.add_argument("--small", action="store_true", help="the CPU-sized model (SMALL)")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile the training step (auto: on CUDA, eager if it fails)")
    p.add_argument("--time-limit", type=float, default=float("inf"),
                   help="seconds of training after which the run saves and stops")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def load_corpus(path: Path | None) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """The train and held-out byte streams and their SHA-256 (checked against the recipe's
    recorded ones when hsr_lab is importable)."""
    if path is None:
        from hsr_lab.data import pystdlib
        corpus = pystdlib.load()
        train, held = corpus.train, corpus.heldout
    else:
        with np.load(path, allow_pickle=False) as z:
            train, held = z["train"], z["heldout"]
    sha = {"train": hashlib.sha256(train.tobytes()).hexdigest(),
           "heldout": hashlib.sha256(held.tobytes()).hexdigest()}
    try:
        from hsr_lab.data import pystdlib
        same = all(sha[s] == pystdlib.RECORDED[s][2] for s in sha)
        print(f"corpus: {'the recorded corpus' if same else 'NOT the recorded corpus'}")
    except ImportError:
        pass
    return train, held, sha


def batches(stream: np.ndarray, n: int, batch: int, seed: int):
    """Endless (batch, n + 1) windows at offsets drawn by ``seed``: the same order for all."""
    rng = np.random.default_rng(seed)
    while True:
        starts = rng.integers(0, stream.size - n - 1, size=batch)
        yield np.stack([stream[s:s + n + 1] for s in starts]).astype(np.int64)


def heldout_windows(stream: np.ndarray, n: int, count: int, seed: int) -> np.ndarray:
    """``count`` non-overlapping held-out windows of n + 1 bytes (fixed by seed)."""
    slots = (stream.size - 1) // (n + 1)
    chosen = np.sort(np.random.default_rng(seed).choice(slots, size=min(count, slots),
                                                        replace=False))
    return np.stack([stream[s * (n + 1):(s + 1) * (n + 1)] for s in chosen]).astype(np.int64)


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(t, 1.0))))


def optimizer(model: ByteLM, args: argparse.Namespace) -> torch.optim.Optimizer:
    """AdamW; weight decay 0.1 on matrices, none on gains and biases b."""
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    fused = args.device.startswith("cuda")
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), fused=fused)


def autocast(args: argparse.Namespace):
    if args.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def loss_of(model, xy: torch.Tensor, args: argparse.Namespace) -> torch.Tensor:
    with autocast(args):
        logits = model(xy[:, :-1])
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), xy[:, 1:].reshape(-1))


@torch.no_grad()
def evaluate(model: ByteLM, windows: torch.Tensor, args: argparse.Namespace) -> dict:
    """Mean held-out loss in bits per byte, and the attention statistics per layer and head."""
    model.eval()
    model.collect(True)
    total, stats = 0.0, []
    for i in range(0, len(windows), 4):
        xy = windows[i:i + 4]
        total += loss_of(model, xy, args).item() * len(xy)
        stats.append([blk.attn.stats for blk in model.blocks])
    model.collect(False)
    model.train()
    out = {"val_bpb": total / len(windows) / math.log(2)}
    if model.cfg.attention == "relu":
        for key in ("active_share", "empty_rows", "score_rms"):
            out[key] = [torch.stack([s[layer][key] for s in stats]).mean(0).tolist()
                        for layer in range(model.cfg.n_layers)]
    out["b"] = model.biases()
    return out


def save(model: ByteLM, args: argparse.Namespace, meta: dict) -> None:
    """The weights file, written atomically (a run killed mid-write leaves the last one)."""
    arrays = export(model)
    arrays["config"] = np.array(json.dumps(model.cfg.to_dict()))
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = args.out / f".{args.variant}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, args.out / f"{args.variant}.npz")


def compiled_step(model: ByteLM, args: argparse.Namespace):
    """The model the training step calls: torch.compile'd on CUDA unless told otherwise."""
    if args.compile == "off" or (args.compile == "auto" and not args.device.startswith("cuda")):
        return model, False
    return torch.compile(model), True


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = replace(Config(**(SMALL if args.small else {})), **VARIANTS[args.variant])
    train, held, sha = load_corpus(args.corpus)
    model = ByteLM(cfg).to(args.device)
    n = cfg.context
    eval_seed = args.seed + 1 if args.eval_seed is None else args.eval_seed
    windows = torch.as_tensor(heldout_windows(held, n, args.eval_windows, eval_seed),
                              device=args.device)
    calib = torch.as_tensor(next(batches(train, n, args.batch, args.seed + 2)),
                            device=args.device)
    if cfg.attention == "relu":
        with autocast(args):
            model.calibrate(calib[:, :-1])
    opt = optimizer(model, args)
    step_model, is_compiled = compiled_step(model, args)
    meta = {"variant": args.variant, "argv": sys.argv[1:], "corpus_sha256": sha,
            "torch": torch.__version__, "device": _device_name(args), "compiled": is_compiled,
            "params": sum(p.numel() for p in model.parameters()), "b_init": model.biases()}
    log = (args.out / f"{args.variant}.jsonl").open("w")
    print(json.dumps(meta), flush=True)
    data, t0, seen, running = batches(train, n, args.batch, args.seed), time.time(), 0, []
    mark, mark_step = time.time(), 0  # the steps' own time, evaluations left out
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        model.set_ramp(min(1.0, step / max(1, args.ramp * args.steps)))
        xy = torch.as_tensor(next(data), device=args.device)
        try:
            loss = loss_of(step_model, xy, args)
        except Exception as err:  # torch.compile failing on this machine: train eagerly
            if not is_compiled or args.compile == "on":
                raise
            print(f"torch.compile failed ({type(err).__name__}: {err}); eager", flush=True)
            step_model, is_compiled, meta["compiled"] = model, False, False
            loss = loss_of(step_model, xy, args)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append(loss.detach())
        seen += xy[:, :-1].numel()
        last = step == args.steps - 1 or time.time() - t0 > args.time_limit
        if (step + 1) % args.eval_every == 0 or last:
            mean_loss = torch.stack(running).mean().item()  # waits for the steps to finish
            record = {"step": step + 1, "train_bpb": mean_loss / math.log(2),
                      "lr": lr_at(step, args), "elapsed_s": time.time() - t0,
                      "step_s": (time.time() - mark) / (step + 1 - mark_step),
                      "tokens_per_s": seen / (time.time() - t0),
                      "max_mem_gib": _max_mem(args), **evaluate(model, windows, args)}
            running = []
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps({k: v for k, v in record.items() if not isinstance(v, list)}),
                  flush=True)
            save(model, args, {**meta, "steps_done": step + 1, "last": record})
            mark, mark_step = time.time(), step + 1
        if last:
            break
    log.close()


def _device_name(args: argparse.Namespace) -> str:
    if args.device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return "cpu"


def _max_mem(args: argparse.Namespace) -> float:
    if args.device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return 0.0


if __name__ == "__main__":
    main()
