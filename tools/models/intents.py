"""Loader of the intent data set in examples/data/intents.json.

The file contains short English requests to a phone assistant, each with an
intent (alarm, weather, music, message, navigation, reminder) and a fixed
split: "support" examples are the pool that few-shot adaptation draws from,
"test" examples are held out for evaluation. Labels are indices into
`IntentDataset.intents`.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "examples" / "data" / "intents.json"
SPLITS = ("support", "test")


class IntentDataError(ValueError):
    """The intent file is missing a field or contains an invalid example."""


@dataclass(frozen=True)
class IntentSplit:
    """The texts of one split and their int64 labels."""

    texts: Tuple[str, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class IntentDataset:
    """Intent names and the support and test splits."""

    intents: Tuple[str, ...]
    support: IntentSplit
    test: IntentSplit


def load_intents(path: Path = DEFAULT_PATH) -> IntentDataset:
    """Read and validate the intent file.

    Raises:
        FileNotFoundError: the file does not exist.
        IntentDataError: invalid JSON, a missing field, an unknown intent or
            split, an empty text, or a text that occurs twice (compared
            ignoring case and runs of whitespace).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise IntentDataError(f"{path} is not valid JSON: {error}") from error
    for field in ("intents", "examples"):
        if field not in raw:
            raise IntentDataError(f"{path} has no {field!r} field")

    intents = tuple(raw["intents"])
    label_of = {name: label for label, name in enumerate(intents)}
    texts = {split: [] for split in SPLITS}
    labels = {split: [] for split in SPLITS}
    seen = {}

    for index, example in enumerate(raw["examples"]):
        text, intent, split = check_example(path, index, example, label_of)
        key = " ".join(text.lower().split())
        if key in seen:
            raise IntentDataError(
                f"{path}: examples {seen[key]} and {index} have the same text {text!r}"
            )
        seen[key] = index
        texts[split].append(text)
        labels[split].append(label_of[intent])

    splits = {
        split: IntentSplit(tuple(texts[split]), np.array(labels[split], dtype=np.int64))
        for split in SPLITS
    }
    return IntentDataset(intents, splits["support"], splits["test"])


def check_example(path: Path, index: int, example, label_of) -> Tuple[str, str, str]:
    """Return (text, intent, split) of one example, or raise naming the example."""
    where = f"{path}: example {index}"
    if not isinstance(example, dict):
        raise IntentDataError(f"{where} has type {type(example).__name__}, expected a JSON object")
    for field in ("text", "intent", "split"):
        if field not in example:
            raise IntentDataError(f"{where} has no {field!r} field")

    text, intent, split = example["text"], example["intent"], example["split"]
    if not isinstance(text, str) or not text.strip():
        raise IntentDataError(f"{where} has an empty or non-string text")
    if intent not in label_of:
        raise IntentDataError(
            f"{where} has intent {intent!r}, which is not in 'intents' {sorted(label_of)}"
        )
    if split not in SPLITS:
        raise IntentDataError(f"{where} has split {split!r}, expected one of {SPLITS}")
    return text, intent, split


def sample_per_intent(split: IntentSplit, shots: int, seed: int = 0) -> IntentSplit:
    """Draw `shots` examples of every label present in `split`, without replacement.

    The result is ordered by label, then by the random draw. The same seed gives
    the same examples.

    Raises:
        ValueError: the split is empty, or shots is below 1 or above the
            count of some label.
    """
    if len(split) == 0:
        raise ValueError("the split is empty, so there is nothing to sample")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(split.labels):
        candidates = np.flatnonzero(split.labels == label)
        if not 1 <= shots <= len(candidates):
            raise ValueError(
                f"shots {shots} is out of range: label {label} has "
                f"{len(candidates)} examples in this split"
            )
        chosen.extend(rng.choice(candidates, size=shots, replace=False))

    return IntentSplit(tuple(split.texts[i] for i in chosen), split.labels[np.array(chosen)])
