"""Timestep spacing: which of a schedule's T training timesteps a sampler of n steps visits.

One rule for the whole course. A plan is a list of ``Step(timestep, a_t, a_next)``,
noisiest first: the network is called at ``timestep``, where the signal level is
a_t = alpha_bar_t, and the step lands on the less noisy level a_next ("next" in
sampling order; the last step lands on ``final_alpha_bar``). Pixel-space models
and Stable Diffusion walk plans of this one shape.

Spacings (n steps out of T):
- "keras_cv" (KerasCV's, the course's default): timesteps round(i (T - 1) / (n - 1)),
  and each step lands on the next *listed* level.
- diffusers' "linspace" (the same timesteps), "leading" (0, T//n, 2T//n, ... plus
  ``steps_offset``) and "trailing" (T - 1, T - 1 - T/n, ...): each step from t lands
  on alpha_bar[t - T//n], the last one on ``final_alpha_bar``.

Two deliberate departures from diffusers, each where diffusers' own rule breaks:
a one-step plan starts at the noisiest timestep T - 1 (diffusers' linspace and
leading start at 0 or 1 and turn noise into noise), and "leading" with an offset
that would reach T is shifted down to end at T - 1 (diffusers indexes past the end).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SPACINGS = ("keras_cv", "linspace", "leading", "trailing")


class Step(NamedTuple):
    """One sampling step: call the network at ``timestep`` (level a_t), land on level a_next.

    timestep: an int on a discrete schedule, a float on the continuous cosine one.
    """

    timestep: int | float
    a_t: float
    a_next: float


def check_spacing(spacing):
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return spacing


def timesteps(spacing, num_steps, num_train_steps, steps_offset=0):
    """The n integer timesteps visited, noisiest first, each in [0, T) and strictly decreasing."""
    n, total = int(num_steps), int(num_train_steps)
    if n != num_steps or not 1 <= n <= total:
        raise ValueError(f"num_steps must be a whole number between 1 and {total}, got {num_steps}")
    if n == 1:
        return np.array([total - 1])
    if spacing == "keras_cv":  # round(i (T - 1) / (n - 1)), as KerasCV computes it
        steps = np.round(np.arange(n) * ((total - 1) / (n - 1)))
    elif spacing == "linspace":  # the same points, as diffusers computes them (ties may round apart)
        steps = np.linspace(0, total - 1, n).round()
    elif spacing == "leading":  # i * (T // n) + offset, kept below T
        steps = np.arange(n) * (total // n) + int(steps_offset)
        steps -= max(0, int(steps[-1]) - (total - 1))
    else:  # trailing: T - 1, T - 1 - T/n, ... (diffusers' float arange can give n + 1 of them)
        steps = np.round(total - np.arange(n)[::-1] * (total / n)) - 1
    return steps[::-1].astype(np.int64)


def plan(spacing, num_steps, alpha_bars, steps_offset=0, final_alpha_bar=1.0):
    """[Step(timestep, a_t, a_next)] noisiest first, on a discrete schedule's alpha_bars."""
    alpha_bars = np.asarray(alpha_bars, dtype=np.float64)
    total = len(alpha_bars)
    steps = timesteps(spacing, num_steps, total, steps_offset)
    levels = alpha_bars[steps]
    if spacing == "keras_cv" or len(steps) == 1:  # the next listed level
        nexts = np.append(levels[1:], final_alpha_bar)
    else:  # diffusers: alpha_bar[t - T // n], final_alpha_bar below 0
        previous = steps - total // int(num_steps)
        nexts = np.where(previous >= 0, alpha_bars[np.maximum(previous, 0)], final_alpha_bar)
    return [Step(int(t), float(a), float(b)) for t, a, b in zip(steps, levels, nexts)]
