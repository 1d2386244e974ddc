"""Environments that trajectories are recorded from and policies are rolled out in.

`make_env(name, image_size)` returns a `FrameEnv`: `reset(seed) -> frame`, `step(action_vector)
-> (frame, reward, done)`, an `action_space` (`ActionSpace`) and a `scripted_action(rng)` policy.
Frames are uint8 [image_size, image_size, 3]. Names: `cursor-paint` (the synthetic env) or any
gymnasium id whose action space is Discrete (one choice), MultiBinary (buttons) or Box (axes);
Atari ids (`ALE/...`) register ale-py. gymnasium / ale-py are only imported for gymnasium ids.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mmpretrain.data.sources.action_space import ActionAxis, ActionChoice, ActionSpace
from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE, CursorPaintEnv, scripted_action
from mmpretrain.extras import require

CURSOR_PAINT = "cursor-paint"


def resize_frame(frame: np.ndarray, image_size: int) -> np.ndarray:
    if frame.shape[:2] == (image_size, image_size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((image_size, image_size), Image.BILINEAR))


class FrameEnv:
    def __init__(self, name: str, image_size: int, max_steps: int, epsilon: float = 0.2) -> None:
        self.name, self.image_size, self.max_steps, self.epsilon = name, image_size, max_steps, epsilon
        self.steps = 0
        if name == CURSOR_PAINT:
            self.env, self.action_space = CursorPaintEnv(image_size, max_steps=max_steps), ACTION_SPACE
        else:
            self.env = _make_gymnasium(name)
            self.action_space = _gym_action_space(name, self.env.action_space)

    def reset(self, seed: int) -> np.ndarray:
        self.steps = 0
        frame, _ = self.env.reset(seed=seed)
        return self._frame(frame)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        frame, reward, terminated, truncated, _ = self.env.step(self._env_action(action))
        self.steps += 1
        return self._frame(frame), float(reward), bool(terminated or truncated or self.steps >= self.max_steps)

    def _frame(self, observation: np.ndarray) -> np.ndarray:
        frame = observation if self.name == CURSOR_PAINT else self.env.render()
        return resize_frame(np.asarray(frame, dtype=np.uint8), self.image_size)

    def _env_action(self, action: np.ndarray):
        if self.name == CURSOR_PAINT:
            return action
        space = self.env.action_space
        kind = type(space).__name__
        if kind == "Discrete":
            return int(round(float(action[0])))
        if kind == "MultiBinary":
            return (np.asarray(action) >= 0.5).astype(np.int8)
        return np.clip(np.asarray(action, dtype=np.float32), space.low, space.high)

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        if self.name == CURSOR_PAINT:
            return scripted_action(self.env, rng, epsilon=1.0)
        # drawn from `rng`, not the space's own generator, so a recording is reproducible
        space = self.env.action_space
        kind = type(space).__name__
        if kind == "Discrete":
            return np.array([float(space.start + rng.integers(space.n))])
        if kind == "MultiBinary":
            return rng.integers(0, 2, size=int(np.prod(space.n))).astype(np.float64)
        return rng.uniform(space.low, space.high).astype(np.float64)

    def scripted_action(self, rng: np.random.Generator) -> np.ndarray:
        """A competent-but-noisy demonstrator (`epsilon` = random-action chance) reading the
        env's true state: cursor-paint's script, a Breakout ball tracker, a CartPole balancer,
        a Pendulum swing-up controller."""
        if self.name == CURSOR_PAINT:
            return scripted_action(self.env, rng, self.epsilon)
        for prefix, controller in _SCRIPTED_CONTROLLERS.items():
            if self.name.startswith(prefix):
                if rng.random() < self.epsilon:
                    return self.random_action(rng)
                return controller(self.env.unwrapped)
        raise ValueError(f"no scripted policy for environment {self.name!r} (scripted: {CURSOR_PAINT}, "
                         f"{', '.join(_SCRIPTED_CONTROLLERS)}); use the random or checkpoint policy")


# gymnasium's classic-control environments draw their rgb_array frames with pygame
_PYGAME_RENDERED = ("CartPole", "Pendulum", "MountainCar", "Acrobot")


def _make_gymnasium(name: str):
    gym = require("gymnasium", feature=f"environment {name!r}")
    if name.startswith("ALE/"):
        ale_py = require("ale_py", feature=f"environment {name!r}")

        gym.register_envs(ale_py)
        return gym.make(name, render_mode="rgb_array", frameskip=4, repeat_action_probability=0.0)
    if name.startswith(_PYGAME_RENDERED):
        require("pygame", feature=f"rendering {name!r}")
    return gym.make(name, render_mode="rgb_array")


def _gym_action_space(name: str, space) -> ActionSpace:
    kind = type(space).__name__
    if kind == "Discrete":
        return ActionSpace(choices=[ActionChoice("action", int(space.n))])
    if kind == "MultiBinary":
        return ActionSpace(buttons=[f"button{i}" for i in range(int(np.prod(space.n)))])
    if kind == "Box" and len(space.shape) == 1:
        return ActionSpace(axes=[ActionAxis(f"axis{i}", float(max(abs(space.low[i]), abs(space.high[i]))))
                                 for i in range(space.shape[0])])
    raise ValueError(f"environment {name!r}: unsupported action space {space}")


# Breakout RAM (ALE): 72 = paddle x, 99 = ball x, 101 = ball y (0 while no ball is in play)
_PADDLE_X, _BALL_X, _BALL_Y = 72, 99, 101
_NOOP, _FIRE, _RIGHT, _LEFT = 0, 1, 2, 3


def _breakout_tracker(env) -> np.ndarray:
    ram = env.ale.getRAM()
    if ram[_BALL_Y] == 0:
        return np.array([_FIRE], dtype=np.float64)
    offset = int(ram[_BALL_X]) - (int(ram[_PADDLE_X]) + 8)
    action = _RIGHT if offset > 4 else _LEFT if offset < -4 else _NOOP
    return np.array([action], dtype=np.float64)


def _cartpole_balancer(env) -> np.ndarray:
    """Push toward the side the pole falls to, damped by its angular velocity and the cart's drift
    (balances for the full 500 steps from every reset)."""
    x, x_dot, theta, theta_dot = env.state
    return np.array([float(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)])


def _pendulum_swing_up(env) -> np.ndarray:
    """Pump energy (torque along the swing) until the pendulum is near upright, then hold it with
    a PD controller (gymnasium Pendulum: g = 10, m = l = 1, |torque| <= 2)."""
    theta, theta_dot = env.state
    theta = (theta + np.pi) % (2 * np.pi) - np.pi
    if np.cos(theta) > 0.85:
        torque = -(10.0 * theta + 2.0 * theta_dot)
    elif 0.5 * theta_dot ** 2 + 10.0 * (np.cos(theta) - 1.0) < 0:
        torque = 2.0 * (np.sign(theta_dot) or 1.0)
    else:
        torque = -0.5 * theta_dot
    return np.array([float(np.clip(torque, -2.0, 2.0))])


_SCRIPTED_CONTROLLERS = {"ALE/Breakout": _breakout_tracker, "CartPole": _cartpole_balancer,
                         "Pendulum": _pendulum_swing_up}
