"""Stage width@<hidden units> of sweep/dvc.yaml: every point of the stability–plasticity front at one width, in one
process: train θ_A exactly like train_a (at this width), make the Ω of the sweep's methods, then train task B from θ_A
once per point (method × λ of `sweep.points`) and optimizer (`sweep.optimizers`), and record validation and test
accuracy on A and B, or that training diverged. Writes only small JSON files (one per point), no model: the sweep
leaves nothing behind that a fresh clone's `dvc status` would miss."""

import argparse
from pathlib import Path

from cllab import cli
from cllab import methods as methods_lib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=cli.seed_arg, required=True, help="hidden units")
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--data-b", type=Path, default=Path("data/prepared/task_b.npz"))
    parser.add_argument("--out-dir", type=Path, required=True, help="one JSON per point")
    args = parser.parse_args()
    params = cli.load_params()
    sweep, cfg_a, cfg_b = params["sweep"], params["train_a"], params["train_b"]
    if args.width < 1:
        raise SystemExit(f"error: --width must be >= 1, got {args.width}")
    seed, runtime = sweep["seed"], params["runtime"]
    cli.start(params, seed)
    from cllab import data, importance, io, model, runtime as runtime_lib, training

    tasks = {t: io.load_npz(p, required=data.task_arrays_names()) for t, p in (("a", args.data_a), ("b", args.data_b))}
    config = model.ModelConfig(**{**params["model"], "hidden_units": args.width})
    theta_a_net = model.build_model(config, track_path_integral=True)  # exactly like train_a (SI's ω too)
    model.compile_model(theta_a_net, cfg_a["optimizer"]["name"], cfg_a["optimizer"]["learning_rate"])
    start = model.get_weights(theta_a_net)
    training.fit(theta_a_net, tasks["a"]["x_train"], tasks["a"]["y_train"], epochs=cfg_a["epochs"],
                 batch_size=cfg_a["batch_size"], validation=(tasks["a"]["x_val"], tasks["a"]["y_val"]),
                 context=f"sweep θ_A at {args.width} units")
    theta_a = model.get_weights(theta_a_net)
    source = importance.Source(theta_a_net, tasks["a"]["x_train"], tasks["a"]["y_train"],
                               path_integral=theta_a_net.path_integral_values(), start=start, seed=seed)
    names = list(dict.fromkeys(point["method"] for point in sweep["points"]))
    omega = {name: importance.method_importance(name, source, methods_lib.settings_for(name, params["importance"]))
             for name in names}
    from cllab.regularizers import penalty_for

    with io.atomic_dir(args.out_dir) as tmp:  # all points of this width or none
        for optimizer in sweep["optimizers"]:
            for point in sweep["points"]:
                method, strength = point["method"], point["lambda"]
                runtime_lib.set_determinism(seed, runtime["threads"], runtime["precision"])  # each point from the same RNG
                net = model.build_model(config, penalty=penalty_for(strength, theta_a, omega[method]))
                model.set_weights(net, theta_a)
                model.compile_model(net, optimizer["name"], optimizer["learning_rate"])
                result = {"method": method, "lambda": strength, "optimizer": optimizer["name"],
                          "learning_rate": optimizer["learning_rate"], "hidden_units": args.width}
                try:
                    training.fit(net, tasks["b"]["x_train"], tasks["b"]["y_train"], epochs=cfg_b["epochs"],
                                 batch_size=cfg_b["batch_size"], context=f"{method} lambda={strength:g}")
                    result["diverged"] = False
                    for split in ("val", "test"):
                        for t, arrays in tasks.items():
                            result[f"{split}_acc_{t}"] = model.accuracy(net, arrays[f"x_{split}"], arrays[f"y_{split}"])
                except training.DivergedError as err:  # a diverged point is a result of the sweep, not a failure
                    print(f"diverged: {err}")
                    result["diverged"] = True
                io.save_json(tmp / f"{method}_{strength:g}_{optimizer['name']}_h{args.width}.json", result)


if __name__ == "__main__":
    cli.run(main)
