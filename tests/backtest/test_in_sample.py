"""`qt backtest --model promoted`: a promoted model whose training window overlaps the span is refused
unless `--allow-in-sample`, and then every output says IN-SAMPLE.

The model is a real `qt train` (replay clock `--at`, `--force` so the quality gate cannot keep it out)
registered into a real Redis: once through `REDIS_URL`, once into the data folder `qt run` keeps,
which `qt backtest` then reads by itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from quantum_trader.cli import main
from quantum_trader.core.embedded import EmbeddedRedis

from tests.backtest.conftest import profile_file

TRAINED_AT = "2023-11-13T12:00"  # the model's training window ends here


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory: pytest.TempPathFactory, replay_15m: Path) -> tuple[Path, Path]:
    """A profile and a `qt run` data folder whose Redis holds a promoted model trained up to TRAINED_AT."""
    tmp = tmp_path_factory.mktemp("insample")
    profile = tmp / "bt.yaml"
    profile.write_text(profile_file(tmp, replay_15m).read_text().replace("historyBars: 600", "historyBars: 1700")
                       + "  executor: {baseSizeUsd: 60}\n")
    folder = tmp / "data" / "bt"
    with EmbeddedRedis(data_dir=folder) as server:
        assert main(["train", "--profile", str(profile), "--redis-url", server.url, "--force", "--at", TRAINED_AT,
                     "--json"]) == 0
    return profile, folder


def test_overlapping_promoted_model_is_refused_in_one_line(
    trained_folder: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    profile, folder = trained_folder
    monkeypatch.setenv("QT_DATA_DIR", str(folder.parent))  # the state qt run kept: found without REDIS_URL
    capsys.readouterr()
    code = main(["backtest", "--profile", str(profile), "--model", "promoted", "--start", "2023-11-13",
                 "--out", str(tmp_path / "refused"), "--no-plots"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("qt backtest: the promoted model ") and "refused (in-sample)" in err
    assert "--allow-in-sample" in err and "\n" not in err
    assert not (tmp_path / "refused" / "report.json").exists()


def test_allow_in_sample_runs_and_every_output_says_in_sample(
    trained_folder: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    profile, folder = trained_folder
    monkeypatch.setenv("QT_DATA_DIR", str(folder.parent))
    out = tmp_path / "in"
    capsys.readouterr()
    code = main(["backtest", "--profile", str(profile), "--model", "promoted", "--allow-in-sample",
                 "--start", "2023-11-13", "--end", "2023-11-14", "--out", str(out), "--no-oracle"])
    assert code == 0
    summary = capsys.readouterr().out
    doc = json.loads((out / "report.json").read_text())
    assert doc["in_sample"] is True
    assert [m["promoted"] for m in doc["models"]] == [True] and doc["models"][0]["train_end"] > doc["start"]
    assert summary.splitlines()[0].endswith("IN-SAMPLE — not a fair estimate")
    html = (out / "report.html").read_text()
    assert html.count("IN-SAMPLE — not a fair estimate") >= 3  # banner on top, in the summary, at the bottom
    assert "out of sample, after every cost" not in html


def test_a_model_trained_before_the_span_is_out_of_sample(
    trained_folder: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path,
) -> None:
    profile, folder = trained_folder
    with EmbeddedRedis(data_dir=folder) as server:  # the same registry, now through REDIS_URL
        import redis

        src, dst = redis.Redis.from_url(server.url), redis.Redis.from_url(redis_url)
        for key in src.scan_iter("quantum:{bt}:model:*"):
            dst.restore(key, 0, src.dump(key), replace=True)
        src.close()
        dst.close()
    monkeypatch.setenv("REDIS_URL", redis_url)
    out = tmp_path / "oos"
    assert main(["backtest", "--profile", str(profile), "--model", "promoted", "--start", "2023-11-13T13:00",
                 "--out", str(out), "--no-plots"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["in_sample"] is False and doc["models"][0]["train_end"] <= doc["start"]
