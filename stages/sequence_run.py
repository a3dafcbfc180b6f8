"""Stage run@<seed>-<method> of sequence/dvc.yaml: train the permuted-MNIST tasks in turn with one method (or all at
once: --method joint) and write its accuracy matrix R on validation and test, the initial model's accuracies, the
per-epoch test accuracy of the first tasks and the largest importance of each task's penalty, as one JSON file."""

import argparse
from pathlib import Path

from cllab import cli, seqparams
from cllab import methods as methods_lib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--method", required=True, help="a method of cllab/methods/ for sequences, or joint")
    parser.add_argument("--out", type=Path, required=True, help="JSON")
    parser.add_argument("--overrides", type=Path, default=None,
                        help="YAML of params.yaml keys to replace: a named configuration, e.g. sequence/paper/params.yaml")
    args = parser.parse_args()
    params = seqparams.load(overrides=args.overrides)
    seq = params["sequence"]
    known = methods_lib.names("sequence")
    if args.method not in (*known, "joint"):
        raise SystemExit(f"error: --method {args.method!r} is not one of {', '.join(known)}, joint")
    own = seq["method"].get(args.method, {"lambda": 0})
    cli.start(params, args.seed)
    cli.drop_retracing_note()
    from cllab import data, io, model, sequence

    mnist = data.load_mnist(params["prepare"]["raw_dir"], params["prepare"]["tfds_dir"])
    arrays = data.split_digits(mnist, seq["val_fraction"], seq["val_seed"])
    tasks = sequence.PermutedTasks(arrays, data.pixel_permutations(seq["num_tasks"], 28 * 28, args.seed))
    config = model.ModelConfig(**seq["model"], num_classes=10)
    train = seq["train"]
    settings = sequence.RunSettings(
        config=config, epochs=train["epochs"], batch_size=train["batch_size"], optimizer=train["optimizer"]["name"],
        learning_rate=train["optimizer"]["learning_rate"], importance=seq["importance"], strength=own["lambda"],
        options={k: v for k, v in own.items() if k != "lambda"}, curve_tasks=seq["curve_tasks"], seed=args.seed,
    )
    if args.method == "joint":
        result = {"R_joint": sequence.run_joint(tasks, settings)}
    else:
        result = sequence.run_method(args.method, tasks, settings)
    io.save_json(args.out, {"method": args.method, "seed": args.seed, **own, **result}, digits=12)


if __name__ == "__main__":
    cli.run(main)
