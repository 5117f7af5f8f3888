"""Train the course's models from the command line.

    python -m imagegen.train mini                   # the mini Stable Diffusion (about 45 min on 2 CPU cores)
    python -m imagegen.train mini --unet-epochs 2 --output /tmp/mini    # a quick, smaller try
    python -m imagegen.train judge                  # the toy-world judge (about 10 min on 2 CPU cores)

Interrupted? Run the same command again: each stage resumes from its last
finished epoch in the run folder (``--run-dir``, in the cache by default).
The weights go to the package's assets (``--output`` to write elsewhere), with
the recipe and what it measured in ``mini.json``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None):
    from imagegen.paths import cache_dir
    from imagegen.stable_diffusion import mini_recipe

    parser = argparse.ArgumentParser(prog="python -m imagegen.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["mini", "judge"], help="what to train")
    parser.add_argument("--run-dir", help="checkpoints and logs (default: the cache's runs/mini_v<world version>_<settings>)")
    parser.add_argument("--output", default=str(mini_recipe.ASSET_DIR), help="where the weights go (default: %(default)s)")
    for key, value in mini_recipe.RECIPE.items():
        parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=None,
                            help=f"default {value}" + (f" ({mini_recipe.TOY_FLOWER_CHANGES[key]} for toy flowers)"
                                                        if key in mini_recipe.TOY_FLOWER_CHANGES and key != "dataset" else ""))
    parser.add_argument("--no-eval", action="store_true", help="skip scoring the prompts after training")
    args = parser.parse_args(argv)
    if args.model == "judge":
        return _train_judge(args.run_dir or cache_dir("runs", "toy_judge"),
                            args.output if args.output != str(mini_recipe.ASSET_DIR) else None)
    recipe = {key: getattr(args, key) for key in mini_recipe.RECIPE if getattr(args, key) is not None}
    changed = [f"{k}{v}" for k, v in recipe.items() if v != mini_recipe.RECIPE[k]]
    # Named after the toy world's version: a folder of checkpoints trained on an earlier world is never resumed into.
    from imagegen.data.toy_world import VERSION

    run_dir = args.run_dir or cache_dir("runs", f"mini_v{VERSION}" + ("_" + "_".join(changed) if changed else ""))
    print(f"run folder: {run_dir} (run the same command again to resume)")
    mini_recipe.train_mini(run_dir, output=args.output, **recipe)
    if not args.no_eval:
        from imagegen.stable_diffusion.mini_eval import evaluate_and_record

        evaluate_and_record(args.output)
    return 0


def _train_judge(run_dir, output=None):
    """Train the toy-world judge on fresh scenes (resumable in ``run_dir``); write it to the assets (or ``output``)."""
    from imagegen.toy_judge import JUDGE_DIR, ToyJudge

    print(f"run folder: {run_dir} (run the same command again to resume)")
    judge = ToyJudge()
    scores = judge.fit(verbose=2, run_dir=run_dir)
    folder = judge.save(output or JUDGE_DIR)
    print(f"held-out accuracy: objects {scores['objects']:.1%}, relation {scores['relation']:.1%}, place "
          f"{scores['place']:.1%}, all three {scores['all']:.1%}; {judge.record['train_seconds']:.0f} s; saved in {folder}")
    return 0


if __name__ == "__main__":
    from imagegen.tf_logs import import_tensorflow_quietly

    import_tensorflow_quietly()  # before the recipe's modules load TensorFlow
    sys.exit(main())
