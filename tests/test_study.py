"""A study file (cllab.cluster, docs/cluster.md) expands into named experiments with `dvc exp run -S` overrides, a bad
one is named in one line, and the study's table is the mean and 95 % t-interval over seeds. No Dask needed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench import servers
from cllab import cluster

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_the_tiny_study_is_every_combination_of_its_grid_with_the_common_overrides():
    study = cluster.load_study(ROOT / "studies" / "tiny.yaml")
    assert [e.name for e in study.experiments] == ["tiny-l2-0.1-seed1", "tiny-l2-0.1-seed2", "tiny-l2-1-seed1",
                                                  "tiny-l2-1-seed2"]
    first = study.experiments[0]
    assert first.overrides[0] == "methods=[none,l2]"
    assert first.overrides[-2:] == ("train_b.l2.lambda=0.1", "seeds=[1]")
    assert study.seed_key == "seeds" and study.metrics[0] == ("metrics/headline/l2.json", "average")


def test_a_list_adds_experiments_and_the_default_name_joins_the_varied_values(tmp_path: Path):
    study = cluster.load_study(write(tmp_path, "name: s\nlist:\n- {seeds: [0, 1], train_b.ewc.lambda: 100}\n"))
    (only,) = study.experiments
    assert only.name == "s-0_1-100" and only.overrides == ("seeds=[0,1]", "train_b.ewc.lambda=100")


@pytest.mark.parametrize("text, named", [
    ("name: s\ngrid: {seeds: [[0], [1]]}\nexperiment: '{study}'\n", "two experiments are named 's'"),
    ("name: s\ngrid: {seeds: [[0]]}\nexperiment: '{study}-{lambda}'\n", "names {lambda}"),
    ("name: s\ngrid: {seeds: [[0]]}\nexperiment: '{study} {seeds}'\n", "not a valid git ref name"),
    ("name: s\ngrid: {seeds: 0}\n", "grid.seeds must be a non-empty list"),
    ("name: s\n", "no experiments"),
    ("name: s\ngrid: {seeds: [[0]]}\nseeds: [0]\n", "unknown key 'seeds'"),
    ("name: s\ngrid: {seeds: [[0]]}\nseed: methods\n", "seed: 'methods' must be a key"),
    ("name: s\ngrid: {seeds: [[0]]}\nmetrics: [average]\n", "'file.json:key'"),
    ("name: s\ngrid: {seeds: [[0]\n", "not valid YAML at line"),
    ("name: s\ngrid: {seeds: [[0]]}\nseed: [a]\n", "seed must be the params key"),
    ("name: s\ngrid: {seeds: [[0]]}\nmetrics: m.json:average\n", "metrics must be a list"),
    ("name: s\ngrid: {seeds: [[0]]}\nbase: 1234567\n", "base must be a branch"),
    ("name: s\ngrid: {seeds: [[0]]}\nexperiment: 3\n", "experiment must be a name pattern"),
    ("name: s\ngrid: {seeds: [[0]]}\nset: {'a b': 1}\n", "'a b' is not a params key"),
    ("name: s\ngrid: {seeds: [[0]]}\nset: {model: {dropout: 0.1}}\n", "model is a mapping"),
    ("name: s\ngrid: {seeds: [[0]]}\nset: {plot.dpi: .nan}\n", "cannot be passed to `dvc exp run -S`"),
])
def test_a_bad_study_file_is_named_in_one_line(tmp_path: Path, text: str, named: str):
    with pytest.raises(cluster.ClusterError) as error:
        cluster.load_study(write(tmp_path, text))
    assert named in str(error.value) and "\n" not in str(error.value)


def test_the_study_table_is_the_mean_and_t_interval_over_seeds(tmp_path: Path):
    study = cluster.load_study(write(tmp_path, "name: s\ngrid: {lam: [1, 2], seeds: [[0], [1], [2]]}\nseed: seeds\n"
                                               "metrics: [m.json:average]\n"))
    values = {e.name: {("m.json", "average"): 0.1 * i} for i, e in enumerate(study.experiments)}
    rows = cluster.study_table(study, values)
    assert [r["configuration"] for r in rows] == ["lam=1", "lam=2"] and [r["seeds"] for r in rows] == [3, 3]
    for row, sample in zip(rows, (np.array([0.0, 0.1, 0.2]), np.array([0.3, 0.4, 0.5]))):
        half = stats.t.ppf(0.975, 2) * sample.std(ddof=1) / np.sqrt(3)  # independent of cllab.metrics
        assert row["m.average_mean"] == pytest.approx(sample.mean())
        assert row["m.average_ci95"] == pytest.approx(half)


def test_an_experiment_ref_is_where_dvc_puts_it():
    base = "90077aa" + "0" * 33
    assert cluster.exp_ref(base, "tiny-l2-1-seed1") == f"refs/exps/90/077aa{'0' * 33}/tiny-l2-1-seed1"


def test_the_study_figure_draws_every_configuration(tmp_path: Path):
    rows = [{"configuration": "lam=1", "seeds": 3, "m.average_mean": 0.8, "m.average_ci95": 0.05},
            {"configuration": "lam=2", "seeds": 3, "m.average_mean": 0.7, "m.average_ci95": None}]
    png = cluster.study_points(rows, ["m.average"], "s", dpi=40)
    assert png[:4] == b"\x89PNG" and png == cluster.study_points(rows, ["m.average"], "s", dpi=40)  # byte-stable


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo_with_remote(tmp_path: Path) -> tuple[Path, Path, str]:
    """A repository whose base commit has a params.yaml, and a bare git remote holding that commit."""
    repo, origin = tmp_path / "repo", tmp_path / "origin.git"
    repo.mkdir()
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "t")
    git(repo, "config", "user.email", "t@t")
    (repo / "params.yaml").write_text("seeds: [0]\ntrain_b:\n  l2:\n    lambda: 1.0\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "push", "-q", str(origin), "main")
    return repo, origin, git(repo, "rev-parse", "HEAD")


def push_experiment(repo: Path, origin: Path, base: str, name: str, params: str) -> str:
    """A commit on `base` with `params` as params.yaml, pushed to `origin` as experiment `name`'s ref."""
    git(repo, "checkout", "-q", "--detach", base)
    (repo / "params.yaml").write_text(params)
    git(repo, "commit", "-qam", name)
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "push", "-q", str(origin), f"{commit}:{cluster.exp_ref(base, name)}")
    git(repo, "checkout", "-q", "main")
    return commit


def test_an_experiment_on_the_remote_with_other_values_stops_the_study_in_one_line(tmp_path, repo_with_remote):
    repo, origin, base = repo_with_remote
    study = cluster.load_study(write(tmp_path, "name: s\nset: {train_b.l2.lambda: 0.5}\ngrid: {seeds: [[0], [1]]}\n"))
    push_experiment(repo, origin, base, "s-0", "seeds: [0]\ntrain_b:\n  l2:\n    lambda: 0.5\n")  # as the study says
    on_remote = cluster.remote_experiments(str(origin), base)
    cluster.check_finished(repo, str(origin), base, study.experiments, on_remote)  # matches: no error
    push_experiment(repo, origin, base, "s-1", "seeds: [1]\ntrain_b:\n  l2:\n    lambda: 1.0\n")  # an old λ
    on_remote = cluster.remote_experiments(str(origin), base)
    assert set(on_remote) == {"s-0", "s-1"}
    with pytest.raises(cluster.ClusterError) as error:
        cluster.check_finished(repo, str(origin), base, study.experiments, on_remote)
    message = str(error.value)
    assert "s-1 is on" in message and "train_b.l2.lambda=1.0" in message and "\n" not in message
    assert "dvc exp remove -g origin s-1" in message


def test_a_worker_command_runs_under_the_guard_and_a_hung_one_is_killed_in_one_line(tmp_path: Path):
    result = cluster._run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                          tmp_path, guarded=True)
    assert result.stdout == "out\n" and result.stderr == "err\n"
    start = time.monotonic()
    with pytest.raises(cluster.ClusterError) as error:
        cluster._run([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path, timeout=1, guarded=True)
    assert time.monotonic() - start < 20 and "took more than 1 s" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(cluster.ClusterError) as error:
        cluster._run(["git", "rev-parse", "--verify", "nothing"], tmp_path, guarded=True)
    assert "exit 128" in str(error.value) and "\n" not in str(error.value)


def commit_dvc_config(repo: Path, text: str) -> str:
    (repo / ".dvc").mkdir(exist_ok=True)
    (repo / ".dvc" / "config").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "dvc config")
    return git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize("config, named", [
    (None, "has no .dvc/config"),
    ("[core]\n    remote = team\n['remote \"team\"']\n    url = s3://bucket/other\n", "not team (s3://bucket/lab)"),
    ("[core]\n    remote = other\n['remote \"other\"']\n    url = s3://bucket/lab\n", "remote other"),
    ("[core]\n    remote = team\n['remote \"team\"']\n    url = ../store\n", "relative path"),
])
def test_a_base_commit_whose_dvc_remote_differs_from_the_probed_one_is_named_in_one_line(repo_with_remote, config,
                                                                                          named):
    repo, _, base = repo_with_remote
    if config is not None:
        base = commit_dvc_config(repo, config)
    with pytest.raises(cluster.ClusterError) as error:
        cluster.check_committed_remote(repo, base, "team", "s3://bucket/lab")
    assert named in str(error.value) and "\n" not in str(error.value)
    assert "--local" not in str(error.value)


def test_the_committed_dvc_remote_as_probed_passes(repo_with_remote):
    repo, _, _ = repo_with_remote
    base = commit_dvc_config(repo, "[core]\n    remote = team\n['remote \"team\"']\n    url = s3://bucket/lab/\n")
    cluster.check_committed_remote(repo, base, "team", "s3://bucket/lab")


def test_probing_a_directory_that_is_not_a_dvc_repository_or_has_no_remote_section_is_one_line(tmp_path: Path):
    with pytest.raises(cluster.ClusterError) as error:
        cluster.probe_remote(tmp_path)
    assert "is not a DVC repository" in str(error.value) and "\n" not in str(error.value)
    git(tmp_path, "init", "-q")
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = team\n")
    with pytest.raises(cluster.ClusterError) as error:
        cluster.probe_remote(tmp_path)
    assert "'team' is not defined" in str(error.value) and "\n" not in str(error.value)


def test_a_url_in_a_message_has_no_password():
    assert cluster.strip_password("https://me:secret@host/x.git") == "https://host/x.git"
    assert cluster.strip_password("s3://bucket/path") == "s3://bucket/path"


def test_a_study_file_that_is_a_directory_is_named_in_one_line(tmp_path: Path):
    with pytest.raises(cluster.ClusterError) as error:
        cluster.load_study(tmp_path)
    assert "is a directory" in str(error.value)


def test_strings_that_hydra_would_misread_are_quoted_for_dvc_exp_run(tmp_path: Path):
    study = cluster.load_study(write(tmp_path, "name: s\nlist:\n- {a: 'x, y', b: 'true', c: 'k: v', d: ewc, "
                                               "e: ['p q']}\nexperiment: '{study}'\n"))
    assert study.experiments[0].overrides == ("a='x, y'", "b='true'", "c='k: v'", "d=ewc", "e=['p q']")
    from hydra.core.override_parser.overrides_parser import OverridesParser  # what DVC parses -S with

    parsed = OverridesParser.create().parse_overrides(list(study.experiments[0].overrides))
    assert [o.value() for o in parsed] == ["x, y", "true", "k: v", "ewc", ["p q"]]


@pytest.fixture
def project_base(repo_with_remote) -> tuple[Path, str]:
    """The temporary repository with this project's params.yaml and the paper configuration committed."""
    repo, _, _ = repo_with_remote
    (repo / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (repo / "sequence" / "paper").mkdir(parents=True)
    (repo / "sequence" / "paper" / "params.yaml").write_text((ROOT / "sequence" / "paper" / "params.yaml").read_text())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the project's params")
    return repo, git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize("override, named", [
    ("train_b.l2.lamda: 1", "train_b.l2.lamda is not a key of the base commit's params.yaml"),
    ("model.hidden_units: -1", "model.hidden_units"),
    ("methods: [none, l3]", "methods"),
])
def test_an_override_that_params_yaml_would_refuse_stops_the_study_on_the_driver(tmp_path, project_base, override,
                                                                                   named):
    repo, base = project_base
    tiny = cluster.load_study(ROOT / "studies" / "tiny.yaml")
    cluster.check_params(repo, base, tiny)  # the example study is valid
    study = cluster.load_study(write(tmp_path, f"name: s\nset: {{{override}}}\ngrid: {{seeds: [[0]]}}\n"))
    with pytest.raises(cluster.ClusterError) as error:
        cluster.check_params(repo, base, study)
    assert "experiment s-0" in str(error.value) and named in str(error.value) and "\n" not in str(error.value)
    assert str(tmp_path) not in str(error.value).replace(str(study.path), "")  # no temporary path


@pytest.mark.parametrize("argv", [["--local", "0"], ["--slurm", "-2"], ["--local", "two"]])
def test_the_number_of_workers_must_be_positive(tmp_path: Path, argv: list[str], capsys):
    with pytest.raises(SystemExit) as exit_:
        cluster.main(["run", str(ROOT / "studies" / "tiny.yaml"), *argv])
    assert exit_.value.code == 2 and "expected a positive number of workers" in capsys.readouterr().err


def test_a_lab_error_is_one_line_and_exit_status_1(tmp_path: Path, capsys):
    assert cluster.main(["list", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_an_unreachable_scheduler_is_one_line(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(cluster, "SCHEDULER_TIMEOUT", 2)
    port = servers.free_port()  # nothing listens there
    with pytest.raises(cluster.ClusterError) as error:
        with cluster._client(f"tcp://127.0.0.1:{port}", None, None):
            pass
    assert "no Dask scheduler answers" in str(error.value) and "\n" not in str(error.value)


def test_slurm_without_dask_jobqueue_is_one_line(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed: its import fails
    with pytest.raises(cluster.ClusterError) as error:
        with cluster._client(None, None, 1):
            pass
    assert "dask-jobqueue is not installed" in str(error.value) and "[cluster]" in str(error.value)


def test_the_s3_servers_secret_is_not_on_its_command_line(tmp_path: Path):
    try:
        servers.rclone_binary()
    except cluster.ClusterError:
        pytest.skip("rclone is not installed (the [cluster] extra)")
    (tmp_path / "s3").mkdir()
    process = servers.serve_s3(tmp_path / "s3", servers.free_port(), "the-key", "the-secret", tmp_path / "rclone.log")
    try:
        assert "the-secret" not in Path(f"/proc/{process.pid}/cmdline").read_text() and "the-secret" not in str(
            process.args)
    finally:
        servers.stop(process)


def test_a_failed_commands_message_has_no_password(tmp_path: Path):
    with pytest.raises(cluster.ClusterError) as error:
        cluster._run(["git", "ls-remote", "https://me:hunter2@127.0.0.1:9/x.git"], tmp_path, timeout=30)
    assert "hunter2" not in str(error.value) and "https://127.0.0.1:9/x.git" in str(error.value)


def test_a_relative_git_remote_path_is_resolved_against_the_repository(repo_with_remote):
    repo, origin, _ = repo_with_remote
    git(repo, "remote", "add", "origin", "../origin.git")
    assert cluster.git_url(repo, "origin") == str(origin.resolve())
    assert cluster.git_url(repo, "../origin.git") == str(origin.resolve())
    assert cluster.git_url(repo, "https://host/x.git") == "https://host/x.git"
    assert cluster.git_url(repo, "git@host:x.git") == "git@host:x.git"


def test_no_git_or_ssh_prompt_can_hang_a_worker(monkeypatch):
    monkeypatch.delenv("GIT_SSH_COMMAND", raising=False)
    env = cluster._environment()
    assert env["GIT_TERMINAL_PROMPT"] == "0" and "BatchMode=yes" in env["GIT_SSH_COMMAND"]


def test_a_failed_dvc_exp_run_is_a_failed_outcome_not_an_exception_to_retry(tmp_path, repo_with_remote, monkeypatch):
    repo, origin, base = repo_with_remote
    helper, dvc = cluster._helper, cluster._dvc
    monkeypatch.setenv("CLLAB_CLUSTER_DIR", str(tmp_path / "machine"))
    monkeypatch.setattr(cluster, "_helper", lambda command: [sys.executable, "-c", "pass"] if command == "probe"
                        else helper(command))  # no DVC remote here to probe
    monkeypatch.setattr(cluster, "_dvc", lambda *args: dvc("--version") if args[0] == "config" else
                        [sys.executable, "-c", "import sys; print('the run failed'); sys.exit(3)"])
    outcome = cluster.run_experiment(cluster.Job("s-0", base, str(origin), ("seeds=[0]",)))
    assert outcome.status == "failed" and "(exit 3): the run failed" in outcome.error and "\n" not in outcome.error


@pytest.mark.parametrize("text, named", [
    ("{not json", "is not valid JSON"),
    ('{"average": "high"}', "has no number at 'average'"),
    ('{"other": 1}', "has no number at 'average' (its numbers: other)"),
    ('{"average": null}', "has no number at 'average'"),
])
def test_a_metric_that_is_not_a_number_is_one_line(text: str, named: str):
    with pytest.raises(cluster.ClusterError) as error:
        cluster.metric_value(text, "average", "m.json of experiment s-0")
    assert named in str(error.value) and "\n" not in str(error.value)
    assert cluster.metric_value('{"test": {"average": 0.5}}', "test.average", "m.json") == 0.5


def test_a_study_without_dask_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the [cluster] extra were not installed
    for name, value in (("resolve_base", "ab" * 20), ("git_url", "/origin.git"), ("probe_remote", ("team", "s3://b")),
                        ("remote_experiments", {})):
        monkeypatch.setattr(cluster, name, lambda *args, value=value: value)
    for name in ("check_params", "check_base_on_remote", "check_committed_remote", "check_finished"):
        monkeypatch.setattr(cluster, name, lambda *args: None)  # the driver's checks, tested above
    study = cluster.load_study(ROOT / "studies" / "tiny.yaml")
    with pytest.raises(cluster.ClusterError) as error:
        cluster.run_study(study, local=1, report=lambda line: None)
    assert "Dask is not installed" in str(error.value)
