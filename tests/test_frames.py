"""Data in memory: gd_torch.fit(config, data=...) with a DataFrame (a category column, missing cells)
trains exactly as the same table from a file; (x, y) arrays fit NumPy's least squares; a trained run
predicts on a DataFrame."""

import numpy as np
import pandas as pd
import polars
import pytest
import torch

import gd_torch

from conftest import REPO

CSV_CONFIG = REPO / "configs" / "csv.yaml"


def colored(n: int = 60) -> pd.DataFrame:
    """y = 2 x1 + 3 [color = red] - [color = green] + 1, with a few cells missing."""
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=n).round(3)
    color = np.array(["red", "green", "blue"])[rng.integers(0, 3, size=n)]
    y = 2 * x1 + 3 * (color == "red") - (color == "green") + 1
    frame = pd.DataFrame({"x1": x1, "color": pd.Categorical(color), "y": y.round(4)})
    frame.loc[[4, 17], "x1"] = np.nan
    frame.loc[9, "y"] = np.nan
    return frame


def flags(tmp_path, name: str) -> list[str]:
    # No features given: the model takes the data's 4 (x1 and the three one-hot colors).
    return [f"--trainer.logger.init_args.save_dir={tmp_path}", f"--trainer.logger.init_args.name={name}",
            "--data.init_args.x=[x1, color]", "--data.init_args.y=y", "--data.init_args.missing=drop",
            "--model.learning_rate=auto", "--trainer.max_steps=300"]  # fmt: skip


def test_a_dataframe_with_a_category_and_gaps_trains_as_the_same_table_from_a_file(tmp_path, capsys):
    frame = colored()
    path = tmp_path / "colored.csv"
    frame.to_csv(path, index=False)  # NaN as an empty cell, the category as its text
    from_file = gd_torch.fit(CSV_CONFIG, *flags(tmp_path, "file"), "--data.init_args.categorical=[color]",
                             f"--data.init_args.path={path}")  # fmt: skip
    in_memory = gd_torch.fit(CSV_CONFIG, *flags(tmp_path, "frame"), data=frame)  # categorical by its dtype
    assert from_file.exit_code == in_memory.exit_code == 0
    assert in_memory.summary["params"] == from_file.summary["params"]
    assert in_memory.summary["final_loss"] == from_file.summary["final_loss"]
    assert in_memory.summary["metrics"] == from_file.summary["metrics"]
    out = capsys.readouterr().out
    assert out.count(f"path: 3 of {len(frame)} rows dropped (a missing cell), {len(frame) - 3} kept") == 2
    # The exact answer: least squares of the rows kept, with one-hot colors (blue, green, red) and a bias.
    kept = frame.dropna()
    design = np.column_stack([kept["x1"], *(kept["color"] == c for c in ("blue", "green", "red"))]).astype(float)
    solution, *_ = np.linalg.lstsq(design, kept["y"].to_numpy(), rcond=None)
    prediction = in_memory.model.table(kept).double().numpy()
    assert prediction == pytest.approx(design @ solution, abs=2e-3)
    # A polars frame is the same table.
    by_polars = gd_torch.fit(CSV_CONFIG, *flags(tmp_path, "polars"), data=polars.from_pandas(frame))
    assert by_polars.summary["params"] == in_memory.summary["params"]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_x_y_arrays_fit_numpys_least_squares(tmp_path, kind):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.25 + rng.normal(scale=0.1, size=200)
    data = (x, y) if kind == "numpy" else (torch.from_numpy(x), torch.from_numpy(y))
    run = gd_torch.fit(CSV_CONFIG, f"--trainer.logger.init_args.save_dir={tmp_path}", "--model.learning_rate=auto",
                       "--trainer.max_steps=2000", "--data.init_args.standardize=false", data=data)  # fmt: skip
    assert run.exit_code == 0
    x32, y32 = x.astype(np.float32).astype(float), y.astype(np.float32).astype(float)
    solution, *_ = np.linalg.lstsq(np.column_stack([x32, np.ones(200)]), y32, rcond=None)
    assert run.summary["params"]["weight"] == pytest.approx(solution[:3].tolist(), abs=1e-4)
    assert run.summary["params"]["bias"] == pytest.approx(solution[3], abs=1e-4)
    assert run.model.schema.x == ["x1", "x2", "x3"]


def test_a_bad_table_in_memory_is_a_config_error(tmp_path):
    frame = pd.DataFrame({"x1": [1.0, None, 3.0], "x2": [1.0, 2.0, 3.0], "x3": [0.0, 1.0, 0.0], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(gd_torch.ConfigError) as error:
        gd_torch.fit(CSV_CONFIG, f"--trainer.logger.init_args.save_dir={tmp_path}", data=frame)
    assert str(error.value) == (  # before: "data.init_args.path: data has ...", of a path left null
        "data has a bad cell: row 1, column 'x1': null is missing (missing: drop drops the rows with a missing cell)"
    )
    with pytest.raises(gd_torch.ConfigError, match="data: a tuple is \\(x, y\\), got 3 items"):
        gd_torch.fit(CSV_CONFIG, data=(1, 2, 3))
    with pytest.raises(gd_torch.ConfigError) as error:
        gd_torch.fit(CSV_CONFIG, data=[1, 2, 3])
    assert str(error.value).startswith("data: a table is a pandas or polars DataFrame")  # was "data.init_args: data:"
    with pytest.raises(gd_torch.ConfigError) as error:  # before: "... Column 3 named y expected length 4 ..."
        gd_torch.fit(CSV_CONFIG, data=(np.zeros((4, 3)), np.zeros(3)))
    assert str(error.value) == "data: x has 4 rows but y has 3; a row is a point"
    with pytest.raises(gd_torch.ConfigError) as error:  # before: "... write the table as Parquet ..."
        gd_torch.fit(CSV_CONFIG, "--data.init_args.chunk_rows=2", data=(np.zeros((4, 3)), np.zeros(4)))
    assert str(error.value) == "data is a table in memory already; chunk_rows streams a file: leave it null"
    assert list(tmp_path.iterdir()) == []
