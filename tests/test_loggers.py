"""Any Lightning logger, several at once: a CSVLogger's metrics.csv holds the article's table, a
TensorBoard and a CSV logger share one run directory with the same steps, and a real MLflow server
(SQLite store, a free local port) gets every step, the hyperparameters and the run's files."""

import csv
import json
import sys
import urllib.parse
import urllib.request

import pytest
import torch
import yaml

from gd_torch.command import main

from conftest import ARTICLE, article_columns, free_port, get_json, local_server, read_events, run_dirs


def loggers_config(tmp_path, *loggers: dict) -> str:
    path = tmp_path / "loggers.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"logger": list(loggers)}}))
    return str(path)


def tensorboard_logger(save_dir) -> dict:
    return {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": str(save_dir), "name": "article", "default_hp_metric": False}}  # fmt: skip


def csv_logger(save_dir) -> dict:
    return {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(save_dir), "name": "article"},
    }


def csv_columns(path) -> dict[str, list[tuple[int, float]]]:
    columns: dict[str, list[tuple[int, float]]] = {}
    for row in csv.DictReader(path.open()):
        for tag, value in row.items():
            if tag != "step" and value != "":
                columns.setdefault(tag, []).append((int(row["step"]), float(value)))
    return columns


def test_a_csv_logger_alone_holds_the_articles_table(tmp_path, capsys):
    assert main(["--config", str(ARTICLE), "--config", loggers_config(tmp_path, csv_logger(tmp_path))]) == 0
    (run_dir,) = run_dirs(tmp_path)
    columns = csv_columns(run_dir / "metrics.csv")
    b_column, loss_column = article_columns()
    assert [step for step, _ in columns["params/intercept"]] == list(range(30))
    assert [round(v, 4) for _, v in columns["params/intercept"]] == b_column
    assert [round(v, 2) for _, v in columns["train/loss"]] == loss_column
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 30
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    out = capsys.readouterr().out
    assert f"  metrics: {run_dir / 'metrics.csv'}" in out and "tensorboard --logdir" not in out


def test_tensorboard_and_csv_share_the_run_directory_and_the_steps(tmp_path, capsys):
    config = loggers_config(tmp_path, csv_logger(tmp_path), tensorboard_logger(tmp_path))
    assert main(["--config", str(ARTICLE), "--config", config, "--trainer.max_steps=250"]) == 0
    (run_dir,) = run_dirs(tmp_path)
    events = read_events(run_dir)
    columns = csv_columns(run_dir / "metrics.csv")
    for tag in ("train/loss", "params/intercept", "grads/intercept", "train/step_size"):
        steps, values = zip(*columns[tag], strict=True)
        assert [e.step for e in events.Scalars(tag)] == list(steps) == list(range(250))
        assert [e.value for e in events.Scalars(tag)] == pytest.approx(values, rel=1e-7)
    out = capsys.readouterr().out
    assert f"view it: tensorboard --logdir {run_dir}" in out and f"metrics: {run_dir / 'metrics.csv'}" in out


def test_a_run_needs_a_logger_with_a_directory(tmp_path, capsys):
    in_memory = {"class_path": "gd_torch.history.InMemoryLogger"}  # keeps its values, writes no files
    assert main(["--config", str(ARTICLE), "--config", loggers_config(tmp_path, in_memory)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: trainer.logger:")
    assert "TensorBoardLogger or CSVLogger, or of an MLFlowLogger's run" in line and "InMemoryLogger" in line
    assert run_dirs(tmp_path) == []


@pytest.mark.slow  # MLflow's import alone takes seconds
def test_mlflow_alone_keeps_the_run_files_in_a_directory_named_after_its_run(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_only = {"class_path": "lightning.pytorch.loggers.MLFlowLogger",
                   "init_args": {"tracking_uri": store, "experiment_name": "article",
                                 "artifact_location": str(tmp_path / "artifacts")}}  # fmt: skip
    argv = ["--config", str(ARTICLE), "--config", loggers_config(tmp_path, mlflow_only)]
    assert main([*argv, f"--trainer.default_root_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("  mlflow: ")]
    assert line.startswith(f"  mlflow: {store}, run ")
    run_id = line.rsplit(" ", 1)[1]
    run_dir = tmp_path / "runs" / "article" / run_id
    assert f"  run directory: {run_dir}\n" in out
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints", "config.yaml", "summary.json", "trajectory.png"]  # fmt: skip
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 30
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 30
    client = MlflowClient(store)
    b_column, _ = article_columns()
    intercept = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "params/intercept"))
    assert [round(v, 4) for _, v in intercept] == b_column
    assert {"config.yaml", "summary.json", "trajectory.png"} <= {a.path for a in client.list_artifacts(run_id)}
    assert not list(tmp_path.glob("[0-9]*"))  # not Lightning's <experiment id>/<run id>/checkpoints


@pytest.fixture
def mlflow_server(tmp_path):
    """The REST API of a real MLflow tracking server on a free local port, stopped afterwards."""
    port = free_port()
    argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"]  # fmt: skip
    uri = f"http://127.0.0.1:{port}"

    def get(path: str, **query) -> dict:
        return get_json(f"{uri}{path}?{urllib.parse.urlencode(query)}")

    def healthy() -> bool:
        with urllib.request.urlopen(f"{uri}/health", timeout=2):
            return True

    with local_server(argv, healthy, "the MLflow server"):
        yield uri, get


@pytest.mark.slow
def test_mlflow_gets_every_step_the_hyperparameters_and_the_files(tmp_path, capsys, mlflow_server):
    uri, get = mlflow_server
    mlflow = {"class_path": "lightning.pytorch.loggers.MLFlowLogger",
              "init_args": {"tracking_uri": uri, "experiment_name": "article"}}  # fmt: skip
    config = loggers_config(tmp_path, tensorboard_logger(tmp_path / "runs"), mlflow)
    assert main(["--config", str(ARTICLE), "--config", config]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  mlflow: ")]
    assert line.startswith(f"  mlflow: {uri}, run ")
    run_id = line.rsplit(" ", 1)[1]

    def history(tag: str) -> list[tuple[int, float]]:
        metrics = get("/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key=tag, max_results=1000)
        return sorted((m["step"], m["value"]) for m in metrics["metrics"])

    b_column, loss_column = article_columns()
    intercept, loss = history("params/intercept"), history("train/loss")
    assert [step for step, _ in intercept] == [step for step, _ in loss] == list(range(30))
    assert [round(v, 4) for _, v in intercept] == b_column
    assert [round(v, 2) for _, v in loss] == loss_column
    params = {p["key"]: p["value"] for p in get("/api/2.0/mlflow/runs/get", run_id=run_id)["run"]["data"]["params"]}
    assert params["learning_rate"] == "0.01" and params["reduction"] == "sum"
    assert params["max_steps"] == "30" and params["init/intercept"] == "10.0"
    files = {f["path"] for f in get("/api/2.0/mlflow/artifacts/list", run_id=run_id)["files"]}
    assert {"config.yaml", "summary.json", "trajectory.png"} <= files
