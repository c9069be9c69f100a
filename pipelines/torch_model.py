"""A PyTorch MLP for tabular data that trains, evaluates and scores through the same path as sklearn models.

``TabularNet`` is an ``nn.Module`` (so MLflow's pytorch flavor saves and loads it) that carries its own fitted
sklearn preprocessing, and offers ``fit`` / ``predict`` / ``predict_proba`` on DataFrames like an sklearn
estimator. Inference runs in batches under ``torch.inference_mode()`` on whatever device the module is on.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from torch import nn

log = logging.getLogger(__name__)


class TabularNet(nn.Module):
    def __init__(
        self,
        preprocess: ColumnTransformer,
        task: str = "classification",
        hidden: tuple[int, ...] | list[int] = (64, 32),
        epochs: int = 20,
        lr: float = 1e-3,
        batch_size: int = 512,
        weight_decay: float = 1e-4,
        seed: int = 42,
        batch_rows: int = 65_536,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.task = task
        self.hidden = tuple(hidden)
        self.epochs, self.lr, self.batch_size, self.weight_decay = epochs, lr, batch_size, weight_decay
        self.seed = seed
        self.batch_rows = batch_rows
        self.classes_: np.ndarray | None = None
        self.target_mean, self.target_std = 0.0, 1.0
        self.layers: nn.Sequential | None = None

    def _build(self, n_in: int) -> nn.Sequential:
        sizes = [n_in, *self.hidden]
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*blocks, nn.Linear(sizes[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.layers is not None, "fit() first"
        return self.layers(x).squeeze(-1)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The network's input: the fitted preprocessing's output as float32 (what a sharded model's stages get)."""
        return np.asarray(self.preprocess.transform(frame), dtype=np.float32)

    def _matrix(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.as_tensor(self.matrix(frame))

    def fit(self, frame: pd.DataFrame, y: pd.Series) -> TabularNet:
        """Fit the preprocessing, then the network with Adam on mini-batches (CPU or the module's device)."""
        torch.manual_seed(self.seed)
        self.preprocess.fit(frame)
        x = self._matrix(frame)
        if self.task == "classification":
            self.classes_ = np.unique(y)
            if len(self.classes_) != 2:
                raise ValueError(f"TabularNet classifies two classes, got {self.classes_.tolist()}")
            target = torch.as_tensor((y.to_numpy() == self.classes_[1]).astype(np.float32))
            loss_fn: nn.Module = nn.BCEWithLogitsLoss()
        else:
            values = y.to_numpy(dtype=np.float32)
            self.target_mean, self.target_std = float(values.mean()), float(values.std() or 1.0)
            target = torch.as_tensor((values - self.target_mean) / self.target_std)
            loss_fn = nn.MSELoss()
        self.layers = self._build(x.shape[1])
        optimizer = torch.optim.Adam(self.layers.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        self.train()
        for _ in range(self.epochs):
            for batch in torch.randperm(len(x), generator=generator).split(self.batch_size):
                optimizer.zero_grad()
                loss = loss_fn(self(x[batch]), target[batch])
                loss.backward()
                optimizer.step()
        self.eval()
        return self

    def _outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw network outputs in batches of ``batch_rows``, on the module's device, without autograd."""
        x = self._matrix(frame)
        parts = []
        with torch.inference_mode():
            for chunk in x.split(self.batch_rows):
                parts.append(self(chunk.to(self.device, non_blocking=True)).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """``predict_proba`` of raw outputs (however they were computed: here, or by a sharded model's stages)."""
        positive = expit(outputs.astype(np.float64))
        return np.column_stack([1.0 - positive, positive])

    def values(self, outputs: np.ndarray) -> Any:
        """``predict`` of raw outputs: class labels, or regression values in the target's units."""
        if self.task == "classification":
            assert self.classes_ is not None
            return self.classes_[(self.probabilities(outputs)[:, 1] >= 0.5).astype(int)]
        return outputs.astype(np.float64) * self.target_std + self.target_mean

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.probabilities(self._outputs(frame))

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.values(self._outputs(frame))
