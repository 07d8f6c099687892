"""The argument parsing and py-spy summary of scripts/bench_scaling.py --replicas."""

from __future__ import annotations

import argparse

import pytest

from scripts.bench_scaling import order_of, parse_counts, profile_shares


def test_counts_are_read_in_order() -> None:
    assert parse_counts("1,2,4") == [1, 2, 4]
    assert parse_counts(" 4, 1 ,") == [4, 1]


@pytest.mark.parametrize("text", ["", ",", "0,1", "-1", "1,x", "2,2", "1.5"])
def test_bad_counts_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_counts(text)


def test_the_order_alternates_between_runs() -> None:
    assert order_of([1, 2, 4], 0) == [1, 2, 4]
    assert order_of([1, 2, 4], 1) == [4, 2, 1]
    assert order_of([1, 2, 4], 2) == [1, 2, 4]


def test_each_stack_goes_to_its_innermost_category() -> None:
    loop = "run (asyncio/runners.py:190);Stage.run (shared/jetstream.py:507)"
    handler = f"{loop};InferHandler.__call__ (services/infer/handler.py:253)"
    lines = [
        f"{handler};positive_proba (shared/estimators/onnx_transformer.py:190);"
        "Session.run (onnxruntime/capi/onnxruntime_inference_collection.py:406) 6",
        f"{handler};score (shared/models.py:116);clean (shared/preprocessing.py:385) 1",
        f"{handler};decode (shared/jetstream.py:381);"
        "BaseModel.model_validate_json (pydantic/main.py:847) 1",
        f"{loop};EpollSelector.select (selectors.py:468) 1",
        "<module> (elsewhere.py:1) 1",
        "not a stack line",
    ]
    shares = profile_shares(lines)
    assert shares == {
        "model call (ONNX Runtime session.run)": 0.6,
        "the model's own preprocessing of the text": 0.1,
        "message decode/encode (pydantic, JSON)": 0.1,
        "bus (nats-py, stages, event loop, sockets)": 0.1,
        "other": 0.1,
    }
    assert next(iter(shares)) == "model call (ONNX Runtime session.run)"
