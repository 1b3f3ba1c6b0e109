"""``t2ibench itigen train`` / ``import``: learn ITI-GEN inclusive tokens for one tSA from reference
folders (``--category`` pairs or ``--celeba DIR`` in ITI-GEN's folder layout), or import the
authors' released ``.pth`` tokens / ``.pt`` prompt embeddings
(``t2ibench itigen import FILE --tsa Smiling --out DIR``; see ``t2ibench.baselines.iti_gen.released``).

Wire into the CLI with ``t2ibench.baselines.iti_gen.cli.add_commands(subparsers)``.

    t2ibench itigen train --clip DIR --tsa Smiling \\
        --category "not smiling=refs/not_smiling" --category "smiling=refs/smiling" \\
        --out tokens/ [--base-prompt "a headshot of a person"] [--epochs 30] [--steps-per-epoch 5]
        [--lr 0.01] [--lambda 0.8] [--batch-size 64] [--max-images 200] [--seed 0]
        [--encoder-key tokens|text_encoder|text_encoder_2]

Writes ``<out>/<tsa>.safetensors`` and ``<out>/<tsa>.json``; use ``params: {tokens_dir: <out>}``
for ``iti-gen`` and ``fairqueue``. ``--category`` order is the category order; with a fairness
prompt set it must match the set's ``meta.categories``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from t2ibench.cliargs import trust_remote_code
from t2ibench.errors import UserError


def _category(value: str) -> tuple[str, Path]:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--category {value!r}: expected NAME=FOLDER")
    return name, Path(folder)


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("itigen", help="ITI-GEN inclusive tokens")
    sub = p.add_subparsers(dest="itigen_command", required=True)
    t = sub.add_parser("train", parents=[trust_remote_code()], help="learn inclusive tokens for one tSA from reference image folders")
    t.add_argument("--clip", required=True, help="local Hugging Face CLIPModel directory")
    t.add_argument("--tsa", required=True, help="tSA name (file name of the tokens), e.g. Smiling")
    t.add_argument("--category", action="append", type=_category, metavar="NAME=FOLDER",
                   help="one per category, in category order")
    t.add_argument("--celeba", type=Path, default=None, metavar="DIR",
                   help="instead of --category: images sorted as ITI-GEN's data/<dataset> (DIR/<Attr>/positive|negative, "
                        "DIR/Age/0_2.., DIR/Skin_tone/1..6), categories as the attributes prompt set")
    t.add_argument("--out", required=True, type=Path, help="output folder (tokens_dir)")
    t.add_argument("--base-prompt", default="a headshot of a person")
    t.add_argument("--n-tokens", type=int, default=3)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--steps-per-epoch", type=int, default=5)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--lambda", dest="lam", type=float, default=0.8)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--max-images", type=int, default=200)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--encoder-key", default="tokens", choices=["tokens", "text_encoder", "text_encoder_2"])
    t.add_argument("--layout", default="reference", choices=["reference", "shifted"])
    t.add_argument("--objective", default="reference", choices=["reference", "project"])
    t.add_argument("--init", default="zeros", choices=["zeros", "random"])
    t.add_argument("--batching", default="reference", choices=["reference", "per-category"])
    t.set_defaults(func=run_train)
    i = sub.add_parser("import", parents=[trust_remote_code()], help="import the ITI-GEN/FairQueue authors' released .pth tokens or .pt prompt embeddings")
    i.add_argument("file", type=Path, help="basis_perturbation_embed_<epoch>_<Attr>.pth or basis_final_embed_<epoch>.pt")
    i.add_argument("--tsa", required=True, help="tSA name as in the attributes prompt set, e.g. Smiling")
    i.add_argument("--out", required=True, type=Path, help="output folder (tokens_dir)")
    i.add_argument("--order", default=None, help="comma list: the file's row for each prompt-set category "
                   "(default: CelebA [positive, negative] reversed; Age, Skin_Tone as is)")
    i.set_defaults(func=run_import)


def run_train(args) -> int:
    from t2ibench.baselines.iti_gen.training import train_iti_gen

    if args.celeba is not None:
        from t2ibench.baselines.iti_gen.released import reference_folders
        from t2ibench.datasets.attributes import TSAS

        if args.category:
            raise UserError("--celeba and --category: give one of them")
        if args.tsa not in TSAS:
            raise UserError(f"--tsa {args.tsa!r}: unknown with --celeba; expected one of {sorted(TSAS)}")
        args.category = list(reference_folders(args.celeba, args.tsa, [c[0] for c in TSAS[args.tsa]]).items())
    if not args.category:
        raise UserError("itigen train: give --category NAME=FOLDER (one per category) or --celeba DIR")
    names = [name for name, _ in args.category]
    if len(set(names)) != len(names):
        raise UserError(f"--category: repeated category names {names}; expected each once")
    result = train_iti_gen(
        args.clip, dict(args.category), args.out, tsa=args.tsa, base_prompt=args.base_prompt, n_tokens=args.n_tokens,
        lam=args.lam, lr=args.lr, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
        max_images=args.max_images, seed=args.seed, encoder_key=args.encoder_key, layout=args.layout,
        objective=args.objective, init=args.init, batching=args.batching,
    )
    first, last = result.history[0], result.history[-1]
    print(f"iti-gen tokens for {args.tsa} ({', '.join(names)}): loss {first['loss']:.4f} -> {last['loss']:.4f}; wrote {result.path}")
    return 0


def run_import(args) -> int:
    from t2ibench.baselines.iti_gen.released import import_released
    from t2ibench.datasets.attributes import TSAS

    if args.tsa not in TSAS:
        raise UserError(f"--tsa {args.tsa!r}: unknown; expected one of {sorted(TSAS)}")
    categories = [c[0] for c in TSAS[args.tsa]]
    order = None
    if args.order:
        try:
            order = [int(x) for x in args.order.split(",")]
        except ValueError:
            raise UserError(f"--order {args.order!r}: expected comma-separated integers") from None
    tokens = import_released(args.file, args.tsa, categories, order)
    path = tokens.save(args.out)
    print(f"iti-gen {tokens.meta['kind']} for {args.tsa} ({', '.join(categories)}) from {args.file.name}: wrote {path}")
    return 0
