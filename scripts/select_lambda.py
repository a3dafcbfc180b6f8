"""Choose each penalty's λ on the validation split (never the test set) and print the table behind the choice.

Rule (documented in docs/choosing-hyperparameters.md): for each method, train on B from θ_A (seed 0) with every λ of a
roughly log-spaced grid, using train_b's epochs, batch size and optimizer from params.yaml; pick the λ with the highest
validation average accuracy (A and B after B). Reads data/prepared/ and the anchors models/<seed>/anchors/<method>.npz,
which stage train_b@<seed>-<method> writes (`dvc repro train_b@0-ewc`, or `dvc pull`).

    python -m scripts.select_lambda                          # the default grids below
    python -m scripts.select_lambda --grid ewc=1000,2000 --grid si=100,1000 [--optimizer adam --learning-rate 1e-3]
"""

import argparse

from cllab import cli, methods

# each method's grid is its `lambda_grid` in cllab/methods/<method>.py
GRIDS = {m.name: list(m.lambda_grid) for m in methods.REGISTRY if m.lambda_grid}


def grid_arg(text: str) -> tuple[str, list[float]]:
    method, _, values = text.partition("=")
    return method, [float(v) for v in values.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=grid_arg, action="append", help="METHOD=λ1,λ2,... (default: all of GRIDS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], help="override train_b.optimizer.name")
    parser.add_argument("--learning-rate", type=float, help="override train_b.optimizer.learning_rate")
    parser.add_argument("--epochs", type=int, help="override train_b.epochs")
    args = parser.parse_args()
    params = cli.load_params()
    cfg = params["train_b"]
    for key, value in (("name", args.optimizer), ("learning_rate", args.learning_rate)):
        if value is not None:
            cfg["optimizer"][key] = value
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    grids = dict(args.grid) if args.grid else GRIDS
    unknown = [m for m in grids if m not in methods.names("two_task")]
    if unknown:
        raise SystemExit(f"error: --grid method {unknown[0]!r} is not one of {', '.join(methods.names('two_task'))}")
    cli.start(params, args.seed)
    from cllab import data, io, model, training
    from cllab.runtime import set_determinism

    task_a = io.load_npz("data/prepared/task_a.npz", required=data.task_arrays_names())
    task_b = io.load_npz("data/prepared/task_b.npz", required=data.task_arrays_names())
    print(f"train_b: epochs {cfg['epochs']}, batch {cfg['batch_size']}, optimizer {cfg['optimizer']}, seed {args.seed}")
    print("method,lambda,val_acc_a,val_acc_b,val_average")
    best = {}
    for method, grid in grids.items():
        anchor_path = f"models/{args.seed}/anchors/{method}.npz"
        for strength in grid:
            set_determinism(args.seed, params["runtime"]["threads"], params["runtime"]["precision"])
            net = model.load_penalized(anchor_path, strength)
            model.compile_model(net, cfg["optimizer"]["name"], cfg["optimizer"]["learning_rate"])
            try:
                training.fit(net, task_b["x_train"], task_b["y_train"], cfg["epochs"], cfg["batch_size"], verbose=0,
                             context=f"{method} lambda={strength:g}")
            except training.DivergedError as err:
                print(f"{method},{strength:g},diverged,diverged,0  # {err}", flush=True)
                continue
            acc_a = model.accuracy(net, task_a["x_val"], task_a["y_val"])
            acc_b = model.accuracy(net, task_b["x_val"], task_b["y_val"])
            average = (acc_a + acc_b) / 2
            print(f"{method},{strength:g},{acc_a:.4f},{acc_b:.4f},{average:.4f}", flush=True)
            if average > best.get(method, (0, None))[0]:
                best[method] = (average, strength)
    for method, (average, strength) in best.items():
        print(f"best {method}: lambda={strength:g} (validation average accuracy {average:.4f})")


if __name__ == "__main__":
    cli.run(main)
