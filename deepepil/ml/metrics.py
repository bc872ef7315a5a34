"""Evaluation of clip predictions: per fold, per patient and pooled; tables and plots.

>>> ev = evaluate(predictions, classes=["FLE", "TLE"])     # doctest: +SKIP
>>> ev.folds          # one row per fold: clips, accuracy, balanced_accuracy, f1_macro, roc_auc
>>> ev.patients       # one row per patient: the same, and the patient-level vote
>>> ev.overall        # pooled over every test clip (a Series)
>>> ev.confusion      # DataFrame: true class x predicted class (clip counts)
>>> ev.plot_confusion(), ev.plot_roc()                    # matplotlib Figures

``predictions`` has one row per test clip: ``fold``, ``patient_code``, ``target_index`` and a
probability column per class (:func:`prob_column`). F1 is macro-averaged over the classes
present in the truth or the predictions of the rows scored; balanced accuracy is the mean
recall over the classes present in the truth; ROC AUC is one-vs-rest, macro-averaged over the
classes that have both positive and negative clips (NaN when none has: e.g. one patient of
one class). The patient-level vote is the class of the patient's mean probabilities.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepepil.errors import ValidationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Evaluation", "evaluate", "clip_metrics", "confusion_table", "prob_column", "METRIC_NAMES"]

#: The metrics of :func:`clip_metrics`, in table order.
METRIC_NAMES: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")


def prob_column(cls: str) -> str:
    """The name of a predictions table's probability column for class ``cls``."""
    return f"prob:{cls}"


def _auc(y_true: np.ndarray, prob: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    scores = []
    for c in range(prob.shape[1]):
        positive = y_true == c
        if 0 < positive.sum() < len(y_true):
            scores.append(roc_auc_score(positive, prob[:, c]))
    if prob.shape[1] == 2 and len(scores) == 2:  # binary: both one-vs-rest AUCs are the same number
        return float(scores[1])
    return float(np.mean(scores)) if scores else float("nan")


def clip_metrics(y_true: Sequence[int], prob: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1 and ROC AUC of class indices ``y_true`` against ``prob`` (N, classes)."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    y = np.asarray(y_true, dtype=np.int64)
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim != 2 or len(prob) != len(y):
        raise ValidationError(f"prob must be (clips, classes) for {len(y)} clips, got shape {prob.shape}")
    if len(y) == 0:
        return {"clips": 0, **{m: float("nan") for m in METRIC_NAMES}}
    pred = prob.argmax(1)
    with warnings.catch_warnings():  # classes missing from one side of a small part are expected here
        warnings.simplefilter("ignore")
        return {
            "clips": int(len(y)),
            "accuracy": float((pred == y).mean()),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
            "roc_auc": _auc(y, prob),
        }


def confusion_table(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> pd.DataFrame:
    """Clip counts: rows the true class, columns the predicted class (every class, zeros included)."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=list(range(len(classes))))
    return pd.DataFrame(matrix, index=pd.Index(list(classes), name="true"),
                        columns=pd.Index(list(classes), name="predicted"))


@dataclasses.dataclass
class Evaluation:
    """Metrics of a set of test predictions; see the module docstring."""

    predictions: pd.DataFrame
    classes: list[str]
    folds: pd.DataFrame
    patients: pd.DataFrame
    overall: pd.Series
    confusion: pd.DataFrame

    def _probs(self) -> np.ndarray:
        return self.predictions[[prob_column(c) for c in self.classes]].to_numpy(np.float64)

    def roc_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        """One-vs-rest ROC per class with both positives and negatives: ``class -> (fpr, tpr, auc)``."""
        from sklearn.metrics import roc_auc_score, roc_curve

        y = self.predictions["target_index"].to_numpy(np.int64)
        prob = self._probs()
        out = {}
        for c, name in enumerate(self.classes):
            positive = y == c
            if 0 < positive.sum() < len(y):
                fpr, tpr, _ = roc_curve(positive, prob[:, c])
                out[name] = (fpr, tpr, float(roc_auc_score(positive, prob[:, c])))
        return out

    def plot_confusion(self, *, normalize: bool = False) -> "Figure":
        """The pooled confusion matrix (counts, or row fractions with ``normalize``)."""
        from matplotlib.figure import Figure

        table = self.confusion.astype(float)
        if normalize:
            table = table.div(table.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
        n = len(self.classes)
        fig = Figure(figsize=(1.6 + 0.9 * n, 1.2 + 0.9 * n), layout="constrained")
        ax = fig.add_subplot()
        image = ax.imshow(table.to_numpy(), cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set_xticks(range(n), self.classes, rotation=45, ha="right")
        ax.set_yticks(range(n), self.classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        top = float(table.to_numpy().max()) if table.size else 0.0
        for (i, j), value in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{value:.2f}" if normalize else f"{int(value)}", ha="center", va="center",
                    color="white" if value > top / 2 else "black")
        ax.set_title("confusion matrix (clips" + (", row fractions)" if normalize else ")"))
        return fig

    def plot_roc(self) -> "Figure":
        """One-vs-rest ROC curves of the pooled test clips, with their AUC."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.5, 4.2), layout="constrained")
        ax = fig.add_subplot()
        curves = self.roc_curves()
        shown = curves if len(self.classes) > 2 else {k: v for k, v in curves.items() if k == self.classes[1]}
        for name, (fpr, tpr, auc) in shown.items():
            ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC" + (f" ({self.classes[1]} vs {self.classes[0]})" if len(self.classes) == 2 else
                              " (one vs rest)"))
        if shown:
            ax.legend(loc="lower right", fontsize="small")
        else:
            ax.text(0.5, 0.5, "undefined: one class in the test clips", ha="center", va="center")
        return fig

    def save(self, folder: Any) -> dict[str, Any]:
        """Write the tables (CSV) and plots (PNG) to ``folder``; return ``name -> path``."""
        from pathlib import Path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, table in (("predictions", self.predictions), ("fold_metrics", self.folds),
                            ("patient_metrics", self.patients), ("confusion_matrix", self.confusion)):
            paths[name] = folder / f"{name}.csv"
            table.to_csv(paths[name], index=name == "confusion_matrix")
        paths["overall_metrics"] = folder / "overall_metrics.csv"
        self.overall.to_frame("value").to_csv(paths["overall_metrics"], index_label="metric")
        for name, fig in (("confusion_matrix_png", self.plot_confusion()), ("roc_png", self.plot_roc())):
            paths[name] = folder / f"{name[:-4]}.png"
            fig.savefig(paths[name], dpi=100)
        return paths


def _group_table(predictions: pd.DataFrame, by: str, classes: Sequence[str]) -> pd.DataFrame:
    probs = [prob_column(c) for c in classes]
    rows = []
    for key, part in predictions.groupby(by, sort=True):
        prob = part[probs].to_numpy(np.float64)
        row: dict[str, Any] = {by: key, **clip_metrics(part["target_index"].to_numpy(), prob)}
        if by == "patient_code":
            true = part["target_index"].value_counts().idxmax()
            voted = int(prob.mean(0).argmax())
            row.update(fold=", ".join(sorted(set(map(str, part["fold"])))), true=classes[int(true)],
                       predicted=classes[voted], correct=bool(voted == true))
        else:
            row["patients"] = int(part["patient_code"].nunique())
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate(predictions: pd.DataFrame, classes: Sequence[str]) -> Evaluation:
    """Metrics of test predictions per fold, per patient and pooled (see the module docstring)."""
    classes = list(classes)
    needed = ["fold", "patient_code", "target_index"] + [prob_column(c) for c in classes]
    missing = [c for c in needed if c not in predictions.columns]
    if missing:
        raise ValidationError(f"predictions lack columns {missing}; they need {needed}")
    prob = predictions[[prob_column(c) for c in classes]].to_numpy(np.float64)
    y = predictions["target_index"].to_numpy(np.int64)
    pooled = clip_metrics(y, prob)
    patients = _group_table(predictions, "patient_code", classes)
    if len(patients):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from sklearn.metrics import balanced_accuracy_score

            votes_true = [classes.index(t) for t in patients["true"]]
            votes = [classes.index(p) for p in patients["predicted"]]
            pooled["patient_accuracy"] = float(np.mean(patients["correct"]))
            pooled["patient_balanced_accuracy"] = float(balanced_accuracy_score(votes_true, votes))
    pooled["patients"] = int(predictions["patient_code"].nunique())
    return Evaluation(
        predictions=predictions.reset_index(drop=True), classes=classes,
        folds=_group_table(predictions, "fold", classes), patients=patients, overall=pd.Series(pooled),
        confusion=confusion_table(y, prob.argmax(1) if len(prob) else [], classes),
    )
