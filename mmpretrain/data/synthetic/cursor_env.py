"""`CursorPaintEnv`: a tiny procedural "desktop" for robot-action tests, gymnasium-style API.

A cursor moves on a torus-wrapped canvas divided into cells; each step it picks a paint colour
(categorical choice), moves by (dx, dy) pixels (mu-law quantized camera-style axes) and may
click (binary button), which paints the cell under the cursor. A target cell with a target
colour is drawn as a marker; painting it with that colour earns reward 1 and moves the target.
Every action leaves a trace in the next frame (cursor position and colour, painted cells), so
an inverse dynamics model can recover it, and the target marker makes the scripted policy's
choices visible to a behaviour-cloning policy.

Action vector (`ACTION_SPACE` order): [click, dx, dy, colour].
"""

from __future__ import annotations

import numpy as np

from mmpretrain.data.sources.action_space import ActionAxis, ActionChoice, ActionSpace

PALETTE = np.array([[230, 60, 60], [60, 200, 80], [70, 110, 240]], dtype=np.uint8)
ACTION_SPACE = ActionSpace(buttons=["click"],
                           axes=[ActionAxis("dx", 10.0, 10.0, 11), ActionAxis("dy", 10.0, 10.0, 11)],
                           choices=[ActionChoice("colour", len(PALETTE))])


def axis_bin_centres(axis: ActionAxis) -> np.ndarray:
    """The continuous value at the centre of each mu-law bin (float64, ascending)."""
    step = 2 * axis.max_value / (axis.bins - 1)
    v = np.arange(axis.bins) * step - axis.max_value
    return np.sign(v) * ((1 + axis.mu) ** (np.abs(v) / axis.max_value) - 1) / axis.mu * axis.max_value


MOVES = axis_bin_centres(ACTION_SPACE.axes[0])


class CursorPaintEnv:
    def __init__(self, image_size: int = 48, cells: int = 6, max_steps: int = 64) -> None:
        if image_size % cells != 0:
            raise ValueError(f"image_size {image_size} must be a multiple of cells {cells}")
        self.image_size, self.cells, self.max_steps = image_size, cells, max_steps
        self.cell_px = image_size // cells
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.cursor = self.rng.uniform(0, self.image_size, size=2)
        self.colour = int(self.rng.integers(len(PALETTE)))
        self.canvas = np.full((self.cells, self.cells), -1, dtype=np.int64)
        self.steps = 0
        self._new_target()
        return self.render(), {}

    def _new_target(self) -> None:
        self.target = self.rng.integers(self.cells, size=2)
        self.target_colour = int(self.rng.integers(len(PALETTE)))

    def cursor_cell(self) -> np.ndarray:
        return (np.floor(self.cursor) // self.cell_px).astype(np.int64) % self.cells

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        click, dx, dy, colour = (float(v) for v in action)
        self.colour = int(round(colour)) % len(PALETTE)
        self.cursor = (self.cursor + np.clip([dx, dy], -10, 10)) % self.image_size
        reward = 0.0
        if click >= 0.5:
            cx, cy = self.cursor_cell()
            self.canvas[cy, cx] = self.colour
            if (cx, cy) == tuple(self.target) and self.colour == self.target_colour:
                reward = 1.0
                self._new_target()
        self.steps += 1
        return self.render(), reward, False, self.steps >= self.max_steps, {}

    def render(self) -> np.ndarray:
        frame = np.full((self.image_size, self.image_size, 3), 40, dtype=np.uint8)
        p = self.cell_px
        for cy, cx in zip(*np.nonzero(self.canvas >= 0)):
            frame[cy * p:(cy + 1) * p, cx * p:(cx + 1) * p] = PALETTE[self.canvas[cy, cx]] // 2
        tx, ty = self.target
        frame[ty * p + p // 2 - 1:ty * p + p // 2 + 1, tx * p + 1:(tx + 1) * p - 1] = PALETTE[self.target_colour]
        frame[ty * p + 1:(ty + 1) * p - 1, tx * p + p // 2 - 1:tx * p + p // 2 + 1] = PALETTE[self.target_colour]
        x, y = np.floor(self.cursor).astype(np.int64)
        rows = np.arange(y - 1, y + 2) % self.image_size
        cols = np.arange(x - 1, x + 2) % self.image_size
        frame[np.ix_(rows, cols)] = PALETTE[self.colour]
        frame[y % self.image_size, x % self.image_size] = 255
        return frame


def scripted_action(env: CursorPaintEnv, rng: np.random.Generator, epsilon: float) -> np.ndarray:
    """Move toward the target cell centre, pick its colour, click on arrival; with probability
    `epsilon` per component take a random value instead."""
    centre = (env.target + 0.5) * env.cell_px
    delta = (centre - env.cursor + env.image_size / 2) % env.image_size - env.image_size / 2
    moves = [MOVES[np.argmin(np.abs(MOVES - d))] for d in delta]
    arrived = np.all(np.abs(delta - moves) < env.cell_px / 2 - 0.5)
    action = np.array([float(arrived), moves[0], moves[1], env.target_colour], dtype=np.float64)
    random_action = random_cursor_action(rng)
    replace = rng.random(4) < epsilon
    return np.where(replace, random_action, action)


def random_cursor_action(rng: np.random.Generator) -> np.ndarray:
    return np.array([float(rng.random() < 0.3), rng.choice(MOVES), rng.choice(MOVES),
                     rng.integers(len(PALETTE))], dtype=np.float64)
