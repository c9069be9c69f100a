"""Multivariate drift: a change in how the features move together, which per-column tests cannot see.

Two features can keep their own distributions while the relation between them breaks (income and loan amount
stop rising together); every per-column test then passes. The signal here is the *data reconstruction error* of a
PCA fitted on the reference (NannyML's ``DataReconstructionDriftCalculator``): the reference's structure is what
the kept components describe, so rows that no longer follow it reconstruct worse, and the window's mean error
rises. Its threshold is learned from the reference, never a constant: the PCA is fitted on one half of the
reference, and the other half is cut into chunks the size of the checked window (drawn with replacement); the
threshold is the chunks' mean error plus ``monitoring.multivariate_sigmas`` standard deviations (NannyML's default
threshold, three). Both halves are out of the fit's sample as the window is, so a stable window sits among them.

Why not NannyML itself: it is a test dependency only, too heavy for every worker that runs a check (see
:mod:`pipelines.estimated_performance`); the lock holds scikit-learn, which this is ~40 lines of, and the method is
small enough to state whole here; pure, no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from pipelines.records import jsonable

MISSING = "__missing__"  # a missing category, one-hot encoded as a value of its own


@dataclass(frozen=True)
class MultivariateDrift:
    """The window's mean reconstruction error against the threshold learned from the reference's chunks."""

    error: float  # mean reconstruction error of the window's rows
    threshold: float  # upper threshold: reference chunks' mean + sigmas * their standard deviation
    reference_error: float  # the reference chunks' mean error
    components: int  # principal components kept (explaining ``variance`` of the reference)
    chunks: int  # reference chunks the threshold was learned from
    rows: int  # rows of the window (and of each reference chunk)
    drifted: bool
    method: str = "PCA reconstruction error"

    def as_dict(self) -> dict[str, Any]:
        """JSON for XCom and the drift result: an undefined number is null (:func:`pipelines.records.jsonable`)."""
        return jsonable(asdict(self))


def _encoder(numerical: list[str], categorical: list[str]) -> Any:
    """Numbers imputed with the mean, categories (missing as one of them) one-hot, everything standardized."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if numerical:
        parts.append(("num", SimpleImputer(strategy="mean", keep_empty_features=True), numerical))
    if categorical:
        one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(("cat", one_hot, categorical))
    return make_pipeline(ColumnTransformer(parts, sparse_threshold=0.0), StandardScaler())


def _prepared(frame: pd.DataFrame, numerical: list[str], categorical: list[str]) -> pd.DataFrame:
    """Numbers as floats with infinities as missing (imputed, as the per-column tests leave them out), categories as
    text with missing as a category of its own."""
    numbers = {c: frame[c].astype("float64").replace([np.inf, -np.inf], np.nan) for c in numerical}
    categories = {c: frame[c].astype(object).where(frame[c].notna(), MISSING).astype(str) for c in categorical}
    return pd.DataFrame({**numbers, **categories}, index=frame.index)


@dataclass(frozen=True)
class Reconstruction:
    """A PCA fitted on half of one reference, with the other half's reconstruction errors: what every window checked
    against that reference shares. Fitting it is most of a check's multivariate cost, and the reference changes only
    with the champion, so a run of days fits it once (:func:`pipelines.monitoring.multivariate_drift` keeps it)."""

    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    encoder: Any
    pca: Any
    reference_errors: np.ndarray  # of the calibration half
    rng_state: dict[str, Any]  # the generator after the split: each window draws its chunks from the same state

    def errors(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's reconstruction error (the rows prepared as the reference was)."""
        x = self.encoder.transform(frame)
        return np.linalg.norm(x - self.pca.inverse_transform(self.pca.transform(x)), axis=1)

    def drift(self, current: pd.DataFrame, *, sigmas: float = 3.0, chunks: int = 100) -> MultivariateDrift | None:
        """The window's mean error against the threshold from reference chunks the window's size; None for an
        empty window."""
        if current.empty:
            return None
        window_errors = self.errors(_prepared(current, list(self.numerical), list(self.categorical)))
        rng = np.random.default_rng()
        rng.bit_generator.state = self.rng_state
        rows, reference = len(window_errors), self.reference_errors
        chunk_means = np.array([reference[rng.integers(0, len(reference), rows)].mean() for _ in range(chunks)])
        mean, spread = float(chunk_means.mean()), float(chunk_means.std(ddof=1))
        error, threshold = float(window_errors.mean()), mean + sigmas * spread
        return MultivariateDrift(
            error=error,
            threshold=threshold,
            reference_error=mean,
            components=int(self.pca.n_components_),
            chunks=chunks,
            rows=rows,
            drifted=bool(error > threshold),
        )


def fit_reconstruction(
    reference: pd.DataFrame, numerical: list[str], categorical: list[str], *, variance: float = 0.65, seed: int = 42
) -> Reconstruction | None:
    """The PCA of one half of the reference and the other half's errors; None when the reference is too small to
    fit on one half and calibrate on the other (under 20 rows) or there is no feature."""
    from sklearn.decomposition import PCA

    if len(reference) < 20 or not (numerical or categorical):
        return None
    reference = _prepared(reference, numerical, categorical)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(reference))
    fit, calibration = reference.iloc[order[: len(order) // 2]], reference.iloc[order[len(order) // 2 :]]
    encoder = _encoder(numerical, categorical).fit(fit)
    pca = PCA(n_components=variance, svd_solver="full").fit(encoder.transform(fit))
    fitted = Reconstruction(tuple(numerical), tuple(categorical), encoder, pca, np.empty(0), rng.bit_generator.state)
    return replace(fitted, reference_errors=fitted.errors(calibration))


def reconstruction_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    *,
    variance: float = 0.65,
    sigmas: float = 3.0,
    chunks: int = 100,
    seed: int = 42,
) -> MultivariateDrift | None:
    """The window's reconstruction error and its threshold from reference chunks, fitted afresh (see
    :class:`Reconstruction` to fit once for many windows); None when the reference is too small or the window empty."""
    fitted = fit_reconstruction(reference, numerical, categorical, variance=variance, seed=seed)
    return None if fitted is None else fitted.drift(current, sigmas=sigmas, chunks=chunks)
