"""Choose the three scenarios' λ (LwF: the distillation weight) on validation data (never the test set) and print
the table behind each choice.

Rule (scenarios/README.md): for each scenario, method and λ of its grid, train all the tasks (seed 0, everything else
as params.yaml `scenarios` says) and score the validation average accuracy over the tasks after the last one, read
as the scenario reads test data; pick the λ with the highest. A diverged run scores 0. One CSV row per run, flushed
as it finishes, so a long grid can be read (and stopped) as it goes; its last column is R on validation data (row i:
the accuracy on tasks 1..i after task i; rows split by "/"), which shows what an average hides (a task forgotten, a
new task not learned).

    python -m scripts.select_scenarios --scenario class --grid ewc=1e2,1e4,1e6 --grid si=10,100,1000
    python -m scripts.select_scenarios --scenario domain --scenario task --grid lwf=0.3,1,3 [--iterations 500]
    python -m scripts.select_scenarios --variant sgd --scenario domain --grid ewc=1,10,100
"""

import argparse
import logging

from cllab import cli, scenparams
from cllab import methods as methods_lib
from cllab import params as params_lib
from cllab.scenarios import SCENARIOS


def grid_arg(text: str) -> tuple[str, list[float]]:
    method, _, values = text.partition("=")
    try:
        return method, [float(v) for v in values.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected METHOD=λ1,λ2,... with numbers, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=grid_arg, action="append", required=True, help="METHOD=λ1,λ2,...")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: scenarios.scenarios")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, help="override scenarios.train.iterations (per task)")
    parser.add_argument("--variant", help="train as scenarios.variants.<VARIANT> says (its train keys; its options "
                                          "where it has the method's, else the main runs')")
    args = parser.parse_args()
    params = scenparams.load()
    if args.iterations is not None:
        params["scenarios"]["train"]["iterations"] = args.iterations
        try:  # an override is checked like the params.yaml value it replaces
            scenparams.validate(params)
        except params_lib.ParamsError as err:
            raise SystemExit(f"error: {err} (with --iterations {args.iterations})") from None
    section = params["scenarios"]
    if args.variant is not None and args.variant not in section["variants"]:
        raise SystemExit(f"error: --variant {args.variant!r} is not one of scenarios.variants: "
                         f"{', '.join(section['variants']) or 'none'}")
    variant = section["variants"][args.variant] if args.variant is not None else {"train": {}, "method": {}}
    grids = dict(args.grid)
    known = methods_lib.names("scenarios")
    for method, grid in grids.items():
        if method not in known:
            raise SystemExit(f"error: --grid method {method!r} is not one of {', '.join(known)}")
        spec = methods_lib.get(method).lambda_spec
        bad = [v for v in grid if not spec.check(v)]
        if not grid or bad:
            raise SystemExit(f"error: --grid {method}: each λ must be {spec.expect}, got {bad or 'none'}")
    cli.start(params, args.seed)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    import numpy as np

    from cllab import data, incremental, training
    from cllab.scenarios import Scenario, SplitTasks

    mnist = data.load_mnist(params["prepare"]["raw_dir"], params["prepare"]["tfds_dir"])
    arrays = data.split_digits(mnist, section["val_fraction"], section["val_seed"])
    train = {**section["train"], **variant["train"]}
    print(f"scenarios: {train}, {section['model']}, seed {args.seed}"
          + ("" if args.variant is None else f", variant {args.variant}"))
    print("scenario,method,lambda,val_average_after_last,val_average_after_each,val_R")
    best = {}
    for name in args.scenario or section["scenarios"]:
        scenario = Scenario(name, tuple(tuple(g) for g in section["order"]))
        tasks = SplitTasks(arrays, scenario)
        for method, grid in grids.items():
            own = (variant["method"].get(method, {}).get(name) or section["method"].get(method, {}).get(name, {}))
            for strength in grid:
                settings = incremental.settings_from_params(  # validation only: no test image is scored
                    section, scenario, train, {**own, "lambda": strength}, args.seed, test=False)
                try:
                    result = incremental.run_method(method, tasks, settings, log=lambda _: None)
                except training.DivergedError as err:
                    print(f"{name},{method},{strength:g},0,diverged  # {err}", flush=True)
                    continue
                rows = result["R"]["val"]
                each = [float(np.mean(row)) for row in rows]
                r = "/".join(" ".join(f"{v:.4f}" for v in row) for row in rows)
                print(f"{name},{method},{strength:g},{each[-1]:.4f},{' '.join(f'{v:.4f}' for v in each)},{r}",
                      flush=True)
                if each[-1] > best.get((name, method), (-1.0, None))[0]:
                    best[name, method] = (each[-1], strength)
    for (name, method), (score, strength) in best.items():
        print(f"best {name} {method}: lambda={strength:g} (validation average {score:.4f})")


if __name__ == "__main__":
    cli.run(main)
