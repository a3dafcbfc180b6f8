"""Choose each penalty's λ on the validation split (never the test set) and print the table behind the choice.

Rule (documented in the README): for each method, train on B from θ_A with every λ of a log-spaced grid, using
train_b's epochs, batch size and optimizer from params.yaml; pick the λ with the highest validation average
accuracy (A and B after B). Needs `dvc repro fisher` first (reads θ_A and its Fisher from models/fisher.npz, and
data/prepared/). Usage: python -m scripts.select_lambda [--l2 0.01 0.1 ...] [--ewc 10 100 ...] [--optimizer adam|sgd]
[--learning-rate LR] [--epochs N]
"""

import argparse

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--l2", type=float, nargs="*", default=[0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0])
    parser.add_argument("--ewc", type=float, nargs="*", default=[30, 100, 300, 1000, 2000, 3000, 4500])
    parser.add_argument("--optimizer", choices=["adam", "sgd"], help="override train_b.optimizer.name")
    parser.add_argument("--learning-rate", type=float, help="override train_b.optimizer.learning_rate")
    parser.add_argument("--epochs", type=int, help="override train_b.epochs")
    args = parser.parse_args()
    params = cli.load_params()
    if args.optimizer is not None:
        params["train_b"]["optimizer"]["name"] = args.optimizer
    if args.learning_rate is not None:
        params["train_b"]["optimizer"]["learning_rate"] = args.learning_rate
    if args.epochs is not None:
        params["train_b"]["epochs"] = args.epochs
    print(f"train_b: {params['train_b']}")
    cli.start(params)
    from cllab import data, io, model, regularizers, training
    from cllab.runtime import set_determinism

    cfg = params["train_b"]
    theta_a = model.get_weights(model.load_model("models/fisher.npz"))
    fisher = model.load_importance("models/fisher.npz")
    task_a = io.load_npz("data/prepared/task_a.npz", required=data.task_arrays_names())
    task_b = io.load_npz("data/prepared/task_b.npz", required=data.task_arrays_names())
    print("method,lambda,val_acc_a,val_acc_b,val_average")
    best = {}
    for method, grid in (("l2", args.l2), ("ewc", args.ewc)):
        for strength in grid:
            set_determinism(params["seed"], params["runtime"]["threads"])
            penalty = regularizers.penalty_for(method, strength, theta_a, fisher)
            net = model.load_model("models/fisher.npz", penalty=penalty)
            model.compile_model(net, cfg["optimizer"]["name"], cfg["optimizer"]["learning_rate"])
            try:
                training.fit(net, task_b["x_train"], task_b["y_train"], cfg["epochs"], cfg["batch_size"], verbose=0,
                             context=f"{method} lambda={strength:g}")
            except training.NonFiniteLossError as err:
                print(f"{method},{strength:g},diverged,diverged,0  # {err}")
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
