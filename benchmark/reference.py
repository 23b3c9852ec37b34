"""The papers' published numbers, read from ``results/reference/published.csv``.

The file is a tidy transcription of the tables of the two method papers (ProGrad, ICCV 2023;
GCSCoOp), one row per published number, with the columns of :data:`COLUMNS`:

* ``paper``, ``table``: where the number is printed (``prograd-iccv2023`` table ``2d`` is
  sub-table (d) of table 2).
* ``method``: the suite's method name (``zeroshot`` for CLIP, ``zeroshot:ensemble`` for
  CLIP++, ``prograd:ensemble`` for ProGrad++, ``linear_probe`` for LP). Methods the suite
  does not have keep a plain name of their own (``lwf``, ``cosine``).
* ``variant``: empty for the method's main setting in that table; otherwise the ablation it
  belongs to (``lambda=0.2``, ``alpha=0.25``, ``best_rho`` for SCoOp† of GCSCoOp, whose
  radius was searched per dataset). Only rows with an empty variant are compared with
  measured results.
* ``protocol``, ``dataset`` (trained on), ``eval_dataset``, ``split`` (``all``, ``base``,
  ``new``, ``hm``; empty for hyperparameters), ``shots``, ``backbone`` (open_clip's name;
  every number was produced with OpenAI's CLIP weights): as in the result table.
  ``shots`` is 0 for zero-shot CLIP, which trains on nothing.
* ``dataset`` or ``eval_dataset`` is :data:`AVERAGE` for the papers' averages over the
  datasets of :data:`AVERAGED_OVER`.
* ``metric``: ``accuracy`` (percent), or a hyperparameter of GCSCoOp's table 4 (``rho``,
  ``beta1``, ``beta2``; an empty value is the table's "-", the bound removed).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.datasets.standard import TRAINED_ON
from benchmark.errors import DataError

__all__ = [
    "AVERAGE",
    "AVERAGED_OVER",
    "COLUMNS",
    "PUBLISHED_FILE",
    "PUBLISHED_PRETRAINED",
    "comparable",
    "load",
]

PUBLISHED_FILE = Path(__file__).resolve().parent.parent / "results" / "reference" / "published.csv"
"""The transcription, in the repository's ``results/reference`` folder."""

COLUMNS = (
    "paper",
    "table",
    "method",
    "variant",
    "protocol",
    "dataset",
    "eval_dataset",
    "split",
    "shots",
    "backbone",
    "metric",
    "value",
)

AVERAGE = "average"
"""The ``dataset`` / ``eval_dataset`` of a published average over datasets."""

PUBLISHED_PRETRAINED = "openai"
"""The weights every published number was produced with."""

_ELEVEN = frozenset(TRAINED_ON)
AVERAGED_OVER: dict[str, frozenset[str]] = {
    "few_shot": _ELEVEN,
    "base_to_new": _ELEVEN,
    "cross_dataset": _ELEVEN - {"imagenet"},
    "domain_generalization": frozenset(
        {"imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"}
    ),
}
"""The datasets each protocol's published averages are taken over (the datasets of a
few-shot or base-to-new average; the targets of a transfer protocol's average)."""


def load(path: Path | None = None) -> pd.DataFrame:
    """The published numbers as a DataFrame with :data:`COLUMNS` (``shots`` int, ``value``
    float, NaN for "-"; text columns with ``""`` for empty)."""
    path = PUBLISHED_FILE if path is None else Path(path)
    if not path.is_file():
        raise DataError(f"published numbers {path}: no such file")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(df.columns) != COLUMNS:
        raise DataError(f"{path}: expected the columns {', '.join(COLUMNS)}")
    df["shots"] = df["shots"].astype(int)
    df["value"] = pd.to_numeric(df["value"].replace("", None), errors="raise").astype(float)
    return df


def comparable(published: pd.DataFrame) -> pd.DataFrame:
    """The rows that measured results are compared with: accuracies of main settings."""
    rows = published[(published["variant"] == "") & (published["metric"] == "accuracy")]
    return rows.reset_index(drop=True)
