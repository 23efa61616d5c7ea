"""The intent data set (examples/data/intents.json) and its loader (tools/models/intents.py)."""
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.models import intents  # noqa: E402

INTENT_NAMES = ("alarm", "weather", "music", "message", "navigation", "reminder")
SUPPORT_PER_INTENT = 10
TEST_PER_INTENT = 30


@pytest.fixture(scope="module")
def raw_examples():
    return json.loads(intents.DEFAULT_PATH.read_text(encoding="utf-8"))["examples"]


def test_counts_per_intent_and_split(raw_examples):
    counts = Counter((e["intent"], e["split"]) for e in raw_examples)

    for name in INTENT_NAMES:
        assert counts[(name, "support")] == SUPPORT_PER_INTENT, f"support examples of {name}"
        assert counts[(name, "test")] == TEST_PER_INTENT, f"test examples of {name}"
    assert sum(counts.values()) == len(INTENT_NAMES) * (SUPPORT_PER_INTENT + TEST_PER_INTENT)


def test_no_duplicate_sentences(raw_examples):
    texts = Counter(" ".join(e["text"].lower().split()) for e in raw_examples)
    duplicates = [text for text, count in texts.items() if count > 1]

    assert duplicates == []


def test_sentences_are_short_requests(raw_examples):
    for example in raw_examples:
        words = len(example["text"].split())
        assert 1 <= words <= 16, f"{example['text']!r} has {words} words"
        assert example["text"] == example["text"].strip(), f"{example['text']!r}: outer spaces"


def test_loader_splits_and_labels():
    dataset = intents.load_intents()

    assert dataset.intents == INTENT_NAMES
    assert len(dataset.support) == len(INTENT_NAMES) * SUPPORT_PER_INTENT
    assert len(dataset.test) == len(INTENT_NAMES) * TEST_PER_INTENT
    assert dataset.support.labels.dtype == np.int64
    assert np.bincount(dataset.support.labels).tolist() == [SUPPORT_PER_INTENT] * len(INTENT_NAMES)
    assert np.bincount(dataset.test.labels).tolist() == [TEST_PER_INTENT] * len(INTENT_NAMES)
    assert not set(dataset.support.texts) & set(dataset.test.texts)


def test_sample_per_intent_draws_from_support():
    support = intents.load_intents().support
    shots = intents.sample_per_intent(support, shots=5, seed=3)

    assert len(shots) == 5 * len(INTENT_NAMES)
    assert np.bincount(shots.labels).tolist() == [5] * len(INTENT_NAMES)
    assert set(shots.texts) <= set(support.texts)
    assert len(set(shots.texts)) == len(shots), "drawn without replacement"
    for text, label in zip(shots.texts, shots.labels):
        assert support.labels[support.texts.index(text)] == label, f"{text!r} changed label"


def test_sample_per_intent_is_seeded():
    support = intents.load_intents().support

    first = intents.sample_per_intent(support, 5, seed=7).texts
    again = intents.sample_per_intent(support, 5, seed=7).texts
    other_seed = intents.sample_per_intent(support, 5, seed=8).texts

    assert first == again
    assert first != other_seed


@pytest.mark.parametrize("shots", [0, SUPPORT_PER_INTENT + 1])
def test_sample_per_intent_shots_out_of_range(shots):
    support = intents.load_intents().support

    with pytest.raises(ValueError, match=f"shots {shots} is out of range"):
        intents.sample_per_intent(support, shots)


def test_sample_per_intent_empty_split():
    empty = intents.IntentSplit((), np.zeros(0, dtype=np.int64))

    with pytest.raises(ValueError, match="the split is empty"):
        intents.sample_per_intent(empty, 1)


def write_intents(path: Path, examples, names=("alarm", "music")) -> Path:
    path.write_text(json.dumps({"intents": list(names), "examples": examples}))
    return path


@pytest.mark.parametrize("example, message", [
    ({"text": "Play a song", "intent": "dance", "split": "test"}, "example 1 has intent 'dance'"),
    ({"text": "Play a song", "intent": "music", "split": "train"}, "example 1 has split 'train'"),
    ({"text": "  ", "intent": "music", "split": "test"}, "example 1 has an empty or non-string"),
    ({"text": "Play a song", "intent": "music"}, "example 1 has no 'split' field"),
    ({"text": "wake me  at six ", "intent": "alarm", "split": "test"}, "examples 0 and 1 have"),
    ("Play a song", "example 1 has type str, expected a JSON object"),
])
def test_loader_rejects_bad_example(tmp_path, example, message):
    first = {"text": "Wake me at six", "intent": "alarm", "split": "support"}
    path = write_intents(tmp_path / "intents.json", [first, example])

    with pytest.raises(intents.IntentDataError, match=message):
        intents.load_intents(path)


def test_loader_rejects_invalid_json(tmp_path):
    path = tmp_path / "intents.json"
    path.write_text('{"intents": ["alarm"], "examples": [')

    with pytest.raises(intents.IntentDataError, match="intents.json is not valid JSON"):
        intents.load_intents(path)


def test_loader_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        intents.load_intents(tmp_path / "absent.json")
