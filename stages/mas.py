"""Stage mas@<seed>: θ_A with MAS' importance Ω = mean over task-A inputs of |∂‖f(x)‖²/∂θ| (no labels needed), as
the anchor file of train_b@<seed>-mas. Its own stage: a change of `mas.*` reruns only this and MAS downstream."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--theta-a", type=Path, required=True)
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = cli.load_params()
    cli.start(params, args.seed)
    from cllab import data, importance, io, model

    net = model.load_model(args.theta_a)
    task_a = io.load_npz(args.data_a, required=data.task_arrays_names())
    x, _ = data.subset(task_a["x_train"], task_a["y_train"], params["mas"]["num_examples"], args.seed)
    omega = importance.mas_importance(net, x, batch_size=params["mas"]["batch_size"])
    model.save_model(args.out, net, model.read_config(args.theta_a), extras=model.importance_extras(omega))
    print(f"seed {args.seed} mas: " + ", ".join(f"{name} max {values.max():.2e}" for name, values in omega.items()))


if __name__ == "__main__":
    cli.run(main)
