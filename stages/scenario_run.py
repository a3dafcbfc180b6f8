"""Stage run@<seed>-<scenario>-<method> of scenarios/dvc.yaml: train split MNIST's tasks in turn in one scenario with
one method (or all at once: --method joint) and write its accuracy matrix R on validation and test, the initial
model's accuracies and the largest importance of each task's penalty, as one JSON file."""

import argparse
from pathlib import Path

from cllab import cli, scenparams
from cllab import methods as methods_lib
from cllab.scenarios import SCENARIOS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--scenario", required=True, choices=SCENARIOS)
    parser.add_argument("--method", required=True, help="a method of cllab/methods/ for the scenarios, or joint")
    parser.add_argument("--out", type=Path, required=True, help="JSON")
    parser.add_argument("--variant", help="a variant of scenarios.variants: the method trained as it says")
    parser.add_argument("--validation-only", action="store_true",
                        help="score validation data only (no test image is read): for choosing settings")
    args = parser.parse_args()
    params = scenparams.load()
    section = params["scenarios"]
    known = methods_lib.names("scenarios")
    if args.method not in (*known, "joint"):
        raise SystemExit(f"error: --method {args.method!r} is not one of {', '.join(known)}, joint")
    if args.variant is not None and args.method == "joint":
        raise SystemExit("error: --variant is for a method's runs, not the joint model")
    train, own = scenparams.run_settings(section, args.scenario, args.method, args.variant)
    cli.start(params, args.seed)
    cli.drop_retracing_note()
    from cllab import data, incremental, io
    from cllab.scenarios import Scenario, SplitTasks

    mnist = data.load_mnist(params["prepare"]["raw_dir"], params["prepare"]["tfds_dir"])
    arrays = data.split_digits(mnist, section["val_fraction"], section["val_seed"])
    scenario = Scenario(args.scenario, tuple(tuple(g) for g in section["order"]))
    tasks = SplitTasks(arrays, scenario)
    settings = incremental.settings_from_params(section, scenario, train, own, args.seed,
                                                test=not args.validation_only)
    if args.method == "joint":
        result = {"R_joint": incremental.run_joint(tasks, settings)}
    else:
        result = incremental.run_method(args.method, tasks, settings)
    variant = {} if args.variant is None else {"variant": args.variant, "train": train}
    io.save_json(args.out, {"scenario": args.scenario, "method": args.method, "seed": args.seed, **variant, **own,
                            **result},
                 digits=12)


if __name__ == "__main__":
    cli.run(main)
