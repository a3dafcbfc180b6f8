"""Stage plot: the accuracy bar chart and the forgetting curves as PNGs (DVC renders the CSV curves itself)."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--table", type=Path, default=Path("metrics/test.csv"))
    parser.add_argument("--curves-dir", type=Path, default=Path("plots/curves"))
    parser.add_argument("--out-dir", type=Path, default=Path("plots"))
    args = parser.parse_args()
    p = cli.load_params()["plot"]
    from cllab import io, plots

    size, dpi = (p["width_in"], p["height_in"]), p["dpi"]
    rows = io.load_csv(args.table)
    joint = next(r for r in rows if r["method"] == "joint")
    curves = {m: io.load_csv(args.curves_dir / f"train_b_{m}.csv") for m in args.methods}
    io.write_bytes(args.out_dir / "accuracy.png", plots.accuracy_bars(rows, size, dpi))
    io.write_bytes(args.out_dir / "forgetting.png", plots.forgetting_curves(curves, joint, size, dpi))


if __name__ == "__main__":
    cli.run(main)
