"""Choose the permuted-MNIST sequence's λ on validation data (never the test set) and print the table behind it.

Rule (documented in the README): for each method and each λ of its grid, train the first `--tasks` tasks of the
sequence (seed 0, everything else as params.yaml `sequence` says) and score the validation average accuracy over
those tasks after the last one; pick the λ with the highest. A diverged run scores 0. The four EWC variants share
the λ chosen for `ewc`, so that the task-C comparison differs only in how the Fisher is carried over.

    python -m scripts.select_sequence --grid l2=0.001,0.01 --grid ewc=1,3,10 [--tasks 4]
    python -m scripts.select_sequence --grid none=0 --grid ewc=10,1000 --optimizer adam --learning-rate 0.001
    python -m scripts.select_sequence --tasks 10 --grid ewc_online=10 --epochs 10 --hidden-units 1000
    python -m scripts.select_sequence --overrides sequence/paper/params.yaml --grid ewc=30,100,300   # paper scale
"""

import argparse
import logging
from pathlib import Path

from cllab import cli, seqparams
from cllab import params as params_lib
from cllab import methods as methods_lib


def grid_arg(text: str) -> tuple[str, list[float]]:
    method, _, values = text.partition("=")
    return method, [float(v) for v in values.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=grid_arg, action="append", required=True, help="METHOD=λ1,λ2,...")
    parser.add_argument("--tasks", type=int, default=4, help="tasks of the sequence to train (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], help="override sequence.train.optimizer.name")
    parser.add_argument("--learning-rate", type=float, help="override sequence.train.optimizer.learning_rate")
    parser.add_argument("--epochs", type=int, help="override sequence.train.epochs (epochs per task)")
    parser.add_argument("--hidden-units", type=int, help="override sequence.model.hidden_units")
    parser.add_argument("--overrides", type=Path, help="a named configuration's keys first (sequence/paper/params.yaml)")
    args = parser.parse_args()
    params = seqparams.load(overrides=args.overrides)
    seq = params["sequence"]
    flag_keys = {"optimizer": ("train", "optimizer", "name"), "learning_rate": ("train", "optimizer", "learning_rate"),
                 "epochs": ("train", "epochs"), "hidden_units": ("model", "hidden_units")}
    given = []
    for flag, (*parents, leaf) in flag_keys.items():
        value = getattr(args, flag)
        if value is not None:
            section = seq
            for key in parents:
                section = section[key]
            section[leaf] = value
            given.append(f"--{flag.replace('_', '-')} {value}")
    try:  # an override is checked like the params.yaml value it replaces
        seq = seqparams.validate(params)["sequence"]
    except params_lib.ParamsError as err:
        raise SystemExit(f"error: {err} (with {' '.join(given)})") from None
    grids = dict(args.grid)
    unknown = [m for m in grids if m not in methods_lib.names("sequence")]
    if unknown:
        raise SystemExit(f"error: --grid method {unknown[0]!r} is not one of {', '.join(methods_lib.names('sequence'))}")
    if not 2 <= args.tasks <= seq["num_tasks"]:
        raise SystemExit(f"error: --tasks must be between 2 and sequence.num_tasks ({seq['num_tasks']}), got {args.tasks}")
    cli.start(params, args.seed)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    import numpy as np

    from cllab import data, model, sequence, training

    mnist = data.load_mnist(params["prepare"]["raw_dir"], params["prepare"]["tfds_dir"])
    arrays = data.split_digits(mnist, seq["val_fraction"], seq["val_seed"])
    tasks = sequence.PermutedTasks(arrays, data.pixel_permutations(args.tasks, 28 * 28, args.seed))
    train = seq["train"]
    print(f"sequence: first {args.tasks} tasks, {seq['model']}, {train}, seed {args.seed}")
    print("method,lambda,val_average_after_last,val_average_after_each")
    best = {}
    for method, grid in grids.items():
        own = dict(seq["method"].get(method, {}))
        for strength in grid:
            settings = sequence.RunSettings(
                config=model.ModelConfig(**seq["model"], num_classes=10), epochs=train["epochs"],
                batch_size=train["batch_size"], optimizer=train["optimizer"]["name"],
                learning_rate=train["optimizer"]["learning_rate"], importance=seq["importance"], strength=strength,
                options={k: v for k, v in own.items() if k != "lambda"}, curve_tasks=0, seed=args.seed,
                test=False)  # validation only: no test image is scored while choosing
            try:
                result = sequence.run_method(method, tasks, settings, log=lambda _: None)
            except training.DivergedError as err:
                print(f"{method},{strength:g},0,diverged  # {err}", flush=True)
                continue
            each = [float(np.mean(row)) for row in result["R"]["val"]]
            print(f"{method},{strength:g},{each[-1]:.4f},{' '.join(f'{v:.4f}' for v in each)}", flush=True)
            if each[-1] > best.get(method, (0, None))[0]:
                best[method] = (each[-1], strength)
    for method, (score, strength) in best.items():
        print(f"best {method}: lambda={strength:g} (validation average over {args.tasks} tasks {score:.4f})")


if __name__ == "__main__":
    cli.run(main)
