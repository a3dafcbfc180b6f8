"""Stage prepare: MNIST (TFDS, offline from prepare.raw_dir when the files are there) -> tasks A and B."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=Path("data/prepared"))
    args = parser.parse_args()
    params = cli.load_params()
    cli.start(params, seed=params["prepare"]["val_seed"])
    from cllab import data, io

    p = params["prepare"]
    try:
        mnist = data.load_mnist(p["raw_dir"], p["tfds_dir"])
    except data.DataError as err:  # only where the mnist stage was skipped (`dvc repro --single-item prepare`)
        raise data.DataError(f"{err} (DVC removed {args.out_dir}/task_*.npz before this stage ran: `dvc checkout prepare` "
                             f"restores the prepared data)") from None
    tasks = data.split_tasks(mnist, p["val_fraction"], p["val_seed"])
    for task, arrays in tasks.items():
        io.save_npz(args.out_dir / f"task_{task}.npz", arrays)
        sizes = ", ".join(f"{split} {len(arrays[f'y_{split}'])}" for split in data.SPLITS)
        print(f"task {task.upper()} (digits {data.TASK_DIGITS[task]}): {sizes}")


if __name__ == "__main__":
    cli.run(main)
