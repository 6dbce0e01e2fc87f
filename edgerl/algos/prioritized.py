"""Sum tree for prioritized experience replay (Schaul et al. 2016), vectorised with numpy.

Leaves hold priorities; each inner node the sum of its children, so sampling proportionally to
priority and updating a batch of priorities both cost O(batch x log capacity).
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Binary sum tree over ``capacity`` leaves (rounded up to a power of two internally)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.leaves = 1 << max(0, (self.capacity - 1).bit_length())
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def get(self, idx: np.ndarray) -> np.ndarray:
        """Priorities of leaves ``idx``."""
        return self.tree[np.asarray(idx) + self.leaves]

    def set(self, idx: np.ndarray, value: np.ndarray) -> None:
        """Set leaves ``idx`` to ``value`` (duplicates: the last write wins) and fix the sums."""
        node = np.asarray(idx, dtype=np.int64).reshape(-1) + self.leaves
        if node.size == 0:
            return
        self.tree[node] = np.broadcast_to(np.asarray(value, dtype=np.float64), node.shape)
        node = np.unique(node // 2)
        while node[0] >= 1:
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]
            node = np.unique(node // 2)

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index whose prefix-sum interval contains each ``mass`` in [0, total)."""
        mass = np.asarray(mass, dtype=np.float64).copy()
        node = np.ones(mass.shape, dtype=np.int64)
        while node[0] < self.leaves:
            left = 2 * node
            right = mass >= self.tree[left]
            mass -= self.tree[left] * right
            node = left + right
        return node - self.leaves

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` leaves drawn proportionally to priority (stratified over n equal segments)."""
        total = self.total
        if total <= 0:
            raise ValueError("cannot sample from a sum tree whose priorities are all zero")
        mass = (np.arange(n) + rng.random(n)) * (total / n)
        idx = self.find(np.minimum(mass, np.nextafter(total, 0)))
        # Rounding can land on an empty leaf next to the drawn one: redraw those from the tree.
        bad = self.get(idx) <= 0
        while bad.any():
            idx[bad] = self.find(rng.random(int(bad.sum())) * total)
            bad = self.get(idx) <= 0
        return idx
