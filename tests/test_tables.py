"""Tables by their extension (CSV, Parquet, a directory of Parquet shards, Feather, .npy) and in memory
(pandas, polars, Arrow, a dict of columns): the same points and the same split as the CSV reader gives,
checked against NumPy's own parse of the file; every bad cell named, now for typed files too."""

import numpy as np
import pandas as pd
import polars
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import torch

from gd_torch.data import CSVPoints, TablePoints, handing

from conftest import REPO, assert_clean_error

HOUSES = REPO / "data" / "houses.csv"
CSV_CONFIG = REPO / "configs" / "csv.yaml"
THREE = REPO / "data" / "three_features.csv"
FEATURES = ["area_m2", "rooms", "age_years", "distance_km", "lot_m2", "income_eur"]
SPLIT = {"val_fraction": 0.15, "test_fraction": 0.15, "seed": 3}


def houses_frame() -> pd.DataFrame:
    return pd.read_csv(HOUSES)


def as_files(tmp_path, frame: pd.DataFrame) -> dict[str, str]:
    """The same table as Parquet, a directory of three Parquet shards, Feather and a structured .npy."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=64)
    shards = tmp_path / "shards"
    shards.mkdir()
    third = -(-len(frame) // 3)
    for i in range(3):  # file names sort in row order: the dataset reads them in that order
        pq.write_table(table.slice(i * third, third), shards / f"part-{i}.parquet")
    feather.write_feather(table, tmp_path / "t.feather")
    records = np.rec.fromarrays([frame[c].to_numpy() for c in frame.columns], names=list(frame.columns))
    np.save(tmp_path / "t.npy", records)
    return {
        "parquet": str(tmp_path / "t.parquet"),
        "shards": str(shards),
        "feather": str(tmp_path / "t.feather"),
        "npy": str(tmp_path / "t.npy"),
    }


def splits(data: TablePoints) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    data.setup("fit")
    return data.splits


def test_csv_gives_numpys_parse_of_the_file_in_float32_in_the_seeded_split():
    data = TablePoints(str(HOUSES), FEATURES, "price_keur", **SPLIT)
    got = splits(data)
    table = np.loadtxt(HOUSES, delimiter=",", skiprows=1)  # float64, then float32 as the model takes it
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(3))
    n_val, n_test = round(0.15 * len(table)), round(0.15 * len(table))
    rows = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    for name, at in rows.items():
        want = table[np.sort(at.numpy())].astype(np.float32)
        x, y = got[name]
        assert torch.equal(x.contiguous(), torch.from_numpy(want[:, :6])), name
        assert torch.equal(y, torch.from_numpy(want[:, 6])), name


@pytest.mark.parametrize("kind", ["parquet", "shards", "feather", "npy", "pandas", "polars", "arrow", "dict"])
def test_every_source_gives_the_csv_files_points(tmp_path, kind):
    frame = houses_frame()
    reference = TablePoints(str(HOUSES), FEATURES, "price_keur", standardize=True, **SPLIT)
    want = splits(reference)
    if kind in ("pandas", "polars", "arrow", "dict"):
        table = {"pandas": frame, "polars": polars.from_pandas(frame), "arrow": pa.Table.from_pandas(frame),
                 "dict": {c: frame[c].to_numpy() for c in frame.columns}}[kind]  # fmt: skip
        with handing(table):
            data = TablePoints(None, FEATURES, "price_keur", standardize=True, **SPLIT)
    else:
        data = TablePoints(as_files(tmp_path, frame)[kind], FEATURES, "price_keur", standardize=True, **SPLIT)
    got = splits(data)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name][0], want[name][0]) and torch.equal(got[name][1], want[name][1]), name
    assert torch.equal(data.features.mean, reference.features.mean)
    assert torch.equal(data.features.std, reference.features.std)


def test_a_parquet_run_is_the_csv_run(train, tmp_path):
    files = as_files(tmp_path, pd.read_csv(THREE))
    by_csv = train(config=CSV_CONFIG)
    by_parquet = train(f"--data.init_args.path={files['parquet']}", config=CSV_CONFIG)
    assert by_csv.exit_code == by_parquet.exit_code == 0, by_parquet.stderr
    assert by_parquet.summary["params"] == by_csv.summary["params"]
    assert by_parquet.summary["final_loss"] == by_csv.summary["final_loss"]


def test_the_old_name_csvpoints_still_reads_configs(train):
    alias = train("--data.class_path=gd_torch.data.CSVPoints", f"--data.init_args.path={THREE}", "--data.init_args.y=y",
                  config=CSV_CONFIG)  # fmt: skip
    assert alias.exit_code == 0, alias.stderr
    assert CSVPoints is TablePoints


def gappy_frame() -> pd.DataFrame:
    """three_features.csv with two gaps (pandas writes NaN as a null) and an infinity."""
    frame = pd.read_csv(THREE)
    frame.loc[7, "x2"] = None
    frame.loc[10, "y"] = np.nan
    frame.loc[12, "x1"] = np.inf
    return frame


def test_bad_cells_of_a_parquet_file_are_named_by_row(train, tmp_path):
    path = tmp_path / "gaps.parquet"
    pq.write_table(pa.Table.from_pandas(gappy_frame(), preserve_index=False), path)
    run = train(f"--data.init_args.path={path}", config=CSV_CONFIG)
    line = assert_clean_error(run)
    assert line == (
        f"error: data.init_args.path: {path} has 3 bad cells: row 7, column 'x2': null is missing;"
        " row 10, column 'y': null is missing; row 12, column 'x1': inf is not a finite number"
        " (missing: drop drops the rows with a missing cell)"
    )


def test_a_null_and_text_that_is_no_number_are_named_in_typed_files(tmp_path):
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"x": pa.array(["1", None, "six", " 2.5 "]), "y": pa.array([1.0, 2.0, 3.0, None])}), path)
    with pytest.raises(ValueError) as error:
        TablePoints(str(path), "x", "y")
    assert str(error.value) == (
        f"path: {path} has 3 bad cells: row 1, column 'x': null is missing; row 2, column 'x': 'six' is not a"
        " number; row 3, column 'y': null is missing (missing: drop drops the rows with a missing cell)"
    )


def test_missing_drop_on_parquet_leaves_the_rows_out_and_says_how_many(tmp_path, capsys):
    frame = gappy_frame()
    frame.loc[12, "x1"] = 0.5  # no infinity: only missing cells
    path = tmp_path / "gaps.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    data = TablePoints(str(path), ["x1", "x2", "x3"], "y", missing="drop")
    x, y = splits(data)["train"]
    kept = frame.drop(index=[7, 10])
    assert torch.equal(y, torch.tensor(kept["y"].to_numpy(), dtype=torch.float32))
    assert torch.equal(x.contiguous(), torch.tensor(kept[["x1", "x2", "x3"]].to_numpy(), dtype=torch.float32))
    assert f"path: 2 of {len(frame)} rows dropped (a missing cell), {len(kept)} kept" in capsys.readouterr().out


def test_ten_bad_cells_are_named_then_counted_in_a_parquet_file(tmp_path):
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"x": [None] * 13 + [1.0], "y": [1.0] * 14}), path)
    with pytest.raises(ValueError) as error:
        TablePoints(str(path), "x", "y")
    assert str(error.value).count("is missing") == 10
    assert str(error.value).endswith("; and 3 more (missing: drop drops the rows with a missing cell)")


def test_a_category_column_of_a_dataframe_is_categorical_without_being_named():
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "y": [1.0, 3.0, 2.0, 6.0, 3.0, 9.0],
                          "color": pd.Categorical(["red", "blue", "red", "blue", "red", "blue"])})  # fmt: skip
    with handing(frame):
        data = TablePoints(None, ["x1", "color"], "y")
    x, _ = splits(data)["train"]
    assert data.schema.feature_names == ["x1", "color=blue", "color=red"]
    assert x.tolist() == [[0, 0, 1], [1, 1, 0], [2, 0, 1], [3, 1, 0], [4, 0, 1], [5, 1, 0]]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_text("x,y\n1,2\n"), ["is not a table this reads by its extension", ".parquet"]),
        (lambda p: p.write_bytes(b"not parquet at all"), ["cannot be read as parquet"]),
        (
            lambda p: pq.write_table(pa.table({"x": pa.array([1, 2], pa.timestamp("s")), "y": [1.0, 2.0]}), p),
            ["column 'x' holds timestamp", "values, not numbers", "categorical"],
        ),
    ],
    ids=["unknown extension", "not parquet", "timestamps"],
)
def test_a_file_that_is_no_table_is_one_error_line(train, tmp_path, make, words):
    path = tmp_path / ("t.txt" if "extension" in words[0] else "t.parquet")
    make(path)
    run = train(f"--data.init_args.path={path}", "--data.init_args.x=x", config=CSV_CONFIG)
    assert_clean_error(run, "data.init_args.path", str(path), *words)


def shards_of(directory, *tables: pa.Table) -> None:
    directory.mkdir()
    for i, table in enumerate(tables):
        pq.write_table(table, directory / f"part-{i}.parquet")


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: d.mkdir(), ["is an empty directory", "one table of Parquet files"]),
        (
            lambda d: shards_of(d, pa.table({"x": [1.0], "y": [2.0]}), pa.table({"z": [1.0], "y": [2.0]})),
            [
                "its Parquet files do not have the same columns: part-1.parquet lacks 'x' and has 'z'",
                "(against part-0.parquet)",
            ],
        ),  # fmt: skip
    ],
    ids=["empty", "columns differ"],
)
@pytest.mark.parametrize("chunk_rows", ["null", "1"])
def test_a_directory_that_is_no_table_is_one_error_line(train, tmp_path, make, words, chunk_rows):
    """Before: a shard without x was read as nulls (streamed: "2500 bad cells: row 2500, column 'x': null
    is missing") or failed in jsonargparse's words; an empty directory "needs a header row"."""
    make(tmp_path / "shards")
    run = train(f"--data.init_args.path={tmp_path / 'shards'}", "--data.init_args.x=x", "--data.init_args.y=y",
                f"--data.init_args.chunk_rows={chunk_rows}", config=CSV_CONFIG)  # fmt: skip
    assert_clean_error(run, "data.init_args.path", str(tmp_path / "shards"), *words)


@pytest.mark.parametrize("chunk_rows", ["null", "1000"])
def test_a_file_corrupt_part_way_is_one_error_line(train, tmp_path, chunk_rows):
    """Its footer is whole, a page is not: pyarrow fails only when that page is read. Before: jsonargparse's
    union message around pyarrow's (in memory and streamed alike)."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": np.arange(5000.0), "y": np.arange(5000.0)}), path, row_group_size=1000)
    damaged = bytearray(path.read_bytes())
    damaged[2000:6000] = b"\xab" * 4000
    path.write_bytes(damaged)
    run = train(f"--data.init_args.path={path}", "--data.init_args.x=x", "--data.init_args.y=y",
                f"--data.init_args.chunk_rows={chunk_rows}", config=CSV_CONFIG)  # fmt: skip
    assert_clean_error(run, f"data.init_args.path: {path} cannot be read: ")


def test_a_table_with_no_path_and_nothing_handed_over_says_what_to_give(train):
    run = train("--data.init_args.path=null", config=CSV_CONFIG)
    assert_clean_error(run, "data.init_args.path must name the table's file", "gd_torch.fit(config, data=...)")


def test_a_plain_2d_npy_names_its_columns_by_position(tmp_path):
    table = np.loadtxt(THREE, delimiter=",", skiprows=1)
    np.save(tmp_path / "plain.npy", table)
    data = TablePoints(str(tmp_path / "plain.npy"), None, "3")
    x, y = splits(data)["train"]
    assert data.schema.feature_names == ["0", "1", "2"]
    assert torch.equal(y, torch.from_numpy(table[:, 3].astype(np.float32)))
    assert torch.equal(x.contiguous(), torch.from_numpy(table[:, :3].astype(np.float32)))
