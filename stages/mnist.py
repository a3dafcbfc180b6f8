"""Stage mnist: the four original MNIST files in `prepare.raw_dir`, verified by size and SHA-256, downloaded first
where absent (from TFDS' source, or $CLLAB_MNIST_URL). Its output is that directory (`persist`: never deleted by
DVC; git-ignored and DVC-cached, so `dvc checkout -f mnist` restores it and temporary experiments get it), so a truncated, corrupt or replaced file changes the pipeline's
status: `dvc status` reports it and `dvc repro` reruns this stage, which stops with one line naming the file before
any stage that reads MNIST starts (the prepared data and every result stay as they were)."""

import argparse
import os

from cllab import cli


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    params = cli.load_params()
    from cllab import data

    raw_dir = params["prepare"]["raw_dir"]
    fetched = data.fetch_raw_files(raw_dir, os.environ.get("CLLAB_MNIST_URL", data.MNIST_URL))
    print(f"{raw_dir}/: the four MNIST files verified" + (f" (downloaded {', '.join(fetched)})" if fetched else ""))


if __name__ == "__main__":
    cli.run(main)
