"""``t2ibench world render|train|eval``: the tinyworld toolkit (wired in by ``t2ibench.cli``).

``add_commands(subparsers)`` adds the ``world`` group; each leaf parser has
``set_defaults(func=fn)`` with ``fn(args) -> int``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cliargs import trust_remote_code


def _render(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from .render import FAMILIES, render

    if args.family not in (None, *FAMILIES):
        raise UserError(f"world render: --family {args.family!r}; expected one of {list(FAMILIES)}")
    if args.n < 1:
        raise UserError(f"world render: --n {args.n}; expected a positive integer")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.jsonl", "w") as f:
        for i in range(args.n):
            seed = args.seed + i
            r = render(seed, args.family, face_dist=args.face_dist)
            name = f"{seed:010d}.png"
            r.pil().save(out / name)
            f.write(json.dumps({"file": name, "seed": seed, "captions": r.captions, "labels": r.labels}) + "\n")
    print(f"wrote {args.n} renders and labels.jsonl to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from .train import STAGES, TrainConfig, train

    if args.stage not in STAGES:
        raise UserError(f"world train: --stage {args.stage!r}; expected one of {list(STAGES)}")
    cfg = TrainConfig(stage=args.stage, work=args.work, out=args.out, steps=args.steps, batch=args.batch,
                      lr=args.lr, ckpt_every=args.ckpt_every, seed=args.seed, device=args.device,
                      threads=args.threads, decoder_only=args.decoder_only, n_latents=args.n_latents,
                      freeze_text=args.freeze_text, lr_decay_steps=args.lr_decay_steps,
                      size=args.size, init_from=args.init_from, token_loss=args.token_loss,
                      token_batch=args.token_batch, replace_text_encoder=args.replace_text_encoder,
                      scene_mix=args.scene_mix, varied_captions=args.varied_captions)
    try:
        info = train(cfg)
    except FileNotFoundError as exc:
        raise UserError(f"world train --stage {args.stage}: {exc}") from None
    print(f"{args.stage}: step {info['step']}, {info['elapsed']:.0f} s trained; weights in {cfg.resolved().out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from .evaluate import PARTS, run_eval

    known = list(PARTS)
    parts = args.parts.split(",") if args.parts else known
    bad = [p for p in parts if p not in known]
    if bad:
        raise UserError(f"world eval: --parts {bad[0]!r}; expected a comma list of {','.join(known)}")
    figures = run_eval(args.weights, parts=parts, quick=args.quick, steps=args.steps, guidance=args.guidance,
                       threads=args.threads)
    for part in parts:
        print(f"== {part} ==\n{json.dumps(figures[part], indent=2, default=float)}")
    return 0


def add_commands(subparsers) -> None:
    world = subparsers.add_parser("world", help="tinyworld: render scenes, train and evaluate the tiny models")
    sub = world.add_subparsers(dest="world_command", required=True)

    r = sub.add_parser("render", parents=[trust_remote_code()], help="render scenes (PNG) with captions and labels (labels.jsonl)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--n", type=int, default=16, help="number of renders")
    r.add_argument("--seed", type=int, default=0, help="first seed (render i uses seed + i)")
    r.add_argument("--family", default=None, help="objects | face (default: drawn 50/50)")
    r.add_argument("--face-dist", default="biased", choices=["biased", "uniform"],
                   help="face attribute distribution (biased = the training distribution)")
    r.set_defaults(func=_render)

    t = sub.add_parser("train", parents=[trust_remote_code()], help="train one stage (resumable: rerun continues from the checkpoint)")
    t.add_argument("--stage", required=True, help="tokenizer | clip | vae | unet | evaluator")
    t.add_argument("--work", default="tw_train", help="work folder for checkpoints and logs (default ./tw_train)")
    t.add_argument("--out", default=None, help="weights folder (default: the package's t2ibench/world/weights)")
    t.add_argument("--steps", type=int, default=None, help="total steps (raise it to continue training)")
    t.add_argument("--batch", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--ckpt-every", type=int, default=100)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--decoder-only", action="store_true", help="vae: fine-tune the decoder, encoder frozen")
    t.add_argument("--freeze-text", action="store_true",
                   help="clip: keep the text tower fixed (it is the trained UNet's text encoder)")
    t.add_argument("--n-latents", type=int, default=20000, help="unet: training renders (latents cached once)")
    t.add_argument("--lr-decay-steps", type=int, default=0,
                   help="unet: decay the lr linearly to 0 over the last N steps of --steps (default: constant)")
    t.add_argument("--init-from", default=None,
                   help="clip: a CLIP folder, unet: a UNet folder to fine-tune from (fresh start; a checkpoint wins)")
    t.add_argument("--token-loss", type=float, default=0.0,
                   help="clip: weight of the token-level objective (each object's words carry that object)")
    t.add_argument("--token-batch", type=int, default=256, help="clip: captions a step for --token-loss")
    t.add_argument("--replace-text-encoder", action="store_true",
                   help="clip: also write pipeline/text_encoder although a UNet is trained on the old one")
    t.add_argument("--scene-mix", default="render", choices=["render", "binding"],
                   help="unet: training scenes: the renderer's 50/50 families, or rich in two-object scenes")
    t.add_argument("--varied-captions", type=float, default=0.0,
                   help="unet: share of object scenes captioned in shuffled order with varied joins")
    t.add_argument("--size", default="base", choices=["base", "tiny"], help="tiny: test-sized models")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", parents=[trust_remote_code()], help="measure the held-out figures and write them into the model cards")
    e.add_argument("--weights", default=None, help="weights folder (default: the package's)")
    e.add_argument("--parts", default=None, help="comma list of evaluator,clip,vae,text,binding,pipeline,itigen (default all)")
    e.add_argument("--quick", action="store_true", help="small samples (smoke check, not the reported figures)")
    e.add_argument("--steps", type=int, default=25, help="denoising steps for the pipeline figures")
    e.add_argument("--guidance", type=float, default=5.0)
    e.add_argument("--threads", type=int, default=None)
    e.set_defaults(func=_eval)
