"""Tables with gaps: every bad cell named in one error line (up to ten), or with missing: drop the rows
with a missing cell left out, said on the console, and the fit that of the rows kept (NumPy's least
squares)."""

import numpy as np
import pytest

from conftest import REPO

CSV = REPO / "configs" / "csv.yaml"
THREE = REPO / "data" / "three_features.csv"


def with_gaps(tmp_path, gaps: dict[int, tuple[int, str]]) -> tuple:
    """three_features.csv with the cells ``{row: (column, text)}`` replaced; its rows and the kept rows."""
    lines = THREE.read_text().splitlines()
    header, rows = lines[0], [line.split(",") for line in lines[1:]]
    for row, (column, text) in gaps.items():
        rows[row][column] = text
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join([header, *(",".join(row) for row in rows)]) + "\n")
    kept = np.array([[float(v) for v in row] for i, row in enumerate(rows) if i not in gaps])
    return path, kept


def test_every_bad_cell_is_named_in_one_line(train, tmp_path):
    path, _ = with_gaps(tmp_path, {7: (1, ""), 10: (3, "NA"), 12: (0, "nan"), 15: (2, "six")})
    run = train(f"--data.init_args.path={path}", config=CSV)
    assert run.exit_code == 2
    (line,) = run.stderr.splitlines()
    assert line == (
        f"error: data.init_args.path: {path} has 4 bad cells: line 9, column 'x2': '' is missing;"
        " line 12, column 'y': 'NA' is missing; line 14, column 'x1': 'nan' is missing;"
        " line 17, column 'x3': 'six' is not a number (missing: drop drops the rows with a missing cell)"
    )
    assert run.run_dirs == []


def test_ten_are_named_and_the_rest_counted(train, tmp_path):
    path, _ = with_gaps(tmp_path, {row: (0, "") for row in range(13)})
    run = train(f"--data.init_args.path={path}", config=CSV)
    (line,) = run.stderr.splitlines()
    assert line.count("is missing") == 10
    assert line.endswith("; and 3 more (missing: drop drops the rows with a missing cell)")


def test_drop_leaves_the_rows_with_a_missing_cell_out(train, tmp_path):
    path, kept = with_gaps(tmp_path, {7: (1, ""), 10: (3, "NA"), 12: (0, "nan")})
    run = train(f"--data.init_args.path={path}", "--data.init_args.missing=drop", "--data.init_args.standardize=false",
                "--model.learning_rate=auto", "--trainer.max_steps=3000", config=CSV)  # fmt: skip
    assert run.exit_code == 0, run.stderr
    total = len(kept) + 3
    assert f"path: 3 of {total} rows dropped (a missing cell), {len(kept)} kept" in run.stdout
    design = np.column_stack([kept[:, :3], np.ones(len(kept))])
    solution, *_ = np.linalg.lstsq(design, kept[:, 3], rcond=None)
    params = run.summary["params"]
    assert params["weight"] == pytest.approx(solution[:3].tolist(), rel=1e-3, abs=1e-4)
    assert params["bias"] == pytest.approx(solution[3], rel=1e-3, abs=1e-4)


def test_a_bad_cell_that_is_not_missing_is_still_an_error_with_drop(train, tmp_path):
    path, _ = with_gaps(tmp_path, {7: (1, ""), 15: (2, "six")})
    run = train(f"--data.init_args.path={path}", "--data.init_args.missing=drop", config=CSV)
    (line,) = run.stderr.splitlines()
    assert line == f"error: data.init_args.path: {path} has a bad cell: line 17, column 'x3': 'six' is not a number"
