"""Samplers ("schedulers", as diffusers says): how to step from one noise level to the next, and back.

The whole course uses these, in pixel space (notebooks 03, 05) and in Stable
Diffusion's latent space (06 to 08). A sampler walks a schedule's plan,
``Step(timestep, a_t, a_next)`` noisiest first, and at each step receives the
noise e the network predicted at level a_t (``prediction.to_epsilon`` converts v):

    x0     = (x_t - sqrt(1 - a_t) e) / sqrt(a_t)                         the clean estimate
- DDIM (Song et al. 2021, eq. 12), with eta:
    sigma  = eta sqrt((1 - a_next) / (1 - a_t)) sqrt(1 - a_t / a_next)
    x_next = sqrt(a_next) x0 + sqrt(1 - a_next - sigma^2) e + sigma z,   z ~ N(0, I)
  eta = 0 is deterministic; eta = 1 adds the DDPM posterior's noise. Good at 20 to 50 steps.
- DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a second-order multistep solver of the
  diffusion ODE in log-SNR time lambda = log(alpha / sigma). With h = lambda_next - lambda,
    x_next = (sigma_next / sigma) x_t - alpha_next (exp(-h) - 1) D,
  D = x0 on the first step and, later, D = (1 + 1/(2r)) x0 - 1/(2r) x0_prev with r = h_prev / h.
  Good at 20 to 25 steps.

Every sampler has the same ``step(x, noise, a_t, a_next, state) -> (x_next, x0, state)``:
``state`` is what a multistep method carries between steps (None for DDIM).
``sample`` runs the loop; ``invert`` runs deterministic DDIM backwards (images to noise).
"""

from __future__ import annotations

import math

import keras

from imagegen.diffusion.prediction import clean_estimate
from imagegen.diffusion.schedules import DiscreteSchedule


def classifier_free_guidance(conditional, unconditional, guidance_scale):
    """Push the prediction away from the unconditional one (Ho & Salimans 2022, eq. 6).

    out = out_uncond + s (out_cond - out_uncond), on e or on v alike (the map between them is affine).
    s = 1 is the conditional prediction; s > 1 follows the prompt harder (SD uses 7.5).
    With a negative prompt, its prediction takes the place of the unconditional one,
    so the sample is pushed away from what the negative prompt describes.
    """
    return unconditional + guidance_scale * (conditional - unconditional)


class DDIM:
    """DDIM with eta on a schedule's plan; on SD's schedule with KerasCV's spacing (the default), step for step
    KerasCV's ``generate_image``.

    schedule: the noise schedule (default: Stable Diffusion's, KerasCV's plan).
    eta: 0 deterministic; 1 DDPM-like, its extra noise drawn from ``seed``.
    x0_range: (low, high) clip for the clean estimate (``prediction.clean_estimate``);
        default: the schedule's own ``clip_x0`` if it has one.
    """

    name = "ddim"

    def __init__(self, schedule=None, eta=0.0, seed=None, x0_range=None):
        self.schedule = schedule if schedule is not None else DiscreteSchedule.scaled_linear()
        clip = getattr(self.schedule, "clip_x0", None)
        self.x0_range = x0_range if x0_range is not None or clip is None else (-clip, clip)
        if eta < 0:
            raise ValueError(f"eta must be 0 or more, got {eta}")
        self.eta = float(eta)
        self.seed_generator = keras.random.SeedGenerator(seed) if self.eta > 0 else None

    def plan(self, num_steps):
        """[Step(timestep, a_t, a_next)] noisiest first: the schedule's plan."""
        return self.schedule.plan(num_steps)

    def step(self, x, noise, a_t, a_next, state=None):
        """One update from level a_t to a_next; returns (x_next, x0, state)."""
        x0, noise = clean_estimate(x, noise, a_t, self.x0_range)
        if self.eta == 0:
            return math.sqrt(a_next) * x0 + math.sqrt(1.0 - a_next) * noise, x0, state
        sigma = self.eta * math.sqrt((1.0 - a_next) / (1.0 - a_t)) * math.sqrt(1.0 - a_t / a_next)
        direction = math.sqrt(max(1.0 - a_next - sigma**2, 0.0)) * noise
        extra = keras.random.normal(keras.ops.shape(x), seed=self.seed_generator)
        return math.sqrt(a_next) * x0 + direction + sigma * extra, x0, state


class DPMSolverPlusPlus(DDIM):
    """DPM-Solver++(2M): second order from the second step on, first order into the clean image.

    It walks the same plan as DDIM; ``state`` carries (x0, h) of the previous step.
    """

    name = "dpm++2m"

    def __init__(self, schedule=None, x0_range=None):
        super().__init__(schedule, 0.0, None, x0_range)

    def step(self, x, noise, a_t, a_next, state=None):
        """One update; returns (x_next, x0, (x0, h))."""
        x0, _ = clean_estimate(x, noise, a_t, self.x0_range)
        if a_next >= 1.0:  # sigma_next = 0: the solution is the clean estimate itself
            return x0, x0, (x0, None)
        alpha, sigma = math.sqrt(a_t), math.sqrt(1.0 - a_t)
        alpha_next, sigma_next = math.sqrt(a_next), math.sqrt(1.0 - a_next)
        h = math.log(alpha_next / sigma_next) - math.log(alpha / sigma)  # lambda_next - lambda
        data = x0
        if state is not None and state[1] is not None:
            previous_x0, previous_h = state
            r = previous_h / h
            data = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * previous_x0
        return (sigma_next / sigma) * x - alpha_next * math.expm1(-h) * data, x0, (x0, h)


SCHEDULERS = {"ddim": DDIM, "dpm++2m": DPMSolverPlusPlus}


def get_scheduler(scheduler, schedule=None, **options):
    """A sampler from its name ("ddim", "dpm++2m") on ``schedule``, or a ready sampler itself.

    options: ``eta`` and ``seed`` (DDIM), ``x0_range`` (both).
    """
    if isinstance(scheduler, str):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        if scheduler != "ddim":
            if options.pop("eta", 0.0):
                raise ValueError(f"eta is DDIM's; {scheduler} is deterministic: use scheduler='ddim' for eta > 0")
            options.pop("seed", None)
        return SCHEDULERS[scheduler](schedule, **options)
    if not (hasattr(scheduler, "plan") and hasattr(scheduler, "step")):
        raise TypeError(f"a scheduler needs plan() and step(); got {type(scheduler).__name__}")
    if schedule is not None or options:
        raise ValueError("pass a scheduler by name together with a schedule or options, or a ready scheduler alone")
    return scheduler


def sample(denoise, x, scheduler, num_steps, start=0, on_step=None, keep=None, progress=None):
    """Run ``scheduler``'s plan of ``num_steps`` on x from step ``start``; returns the last x.

    denoise: callable (x, timestep, a_t) -> the noise e in x (convert v with ``prediction.to_epsilon``).
    on_step: optional callback (step index, x_next, x0) for trajectories and progress bars.
    keep: optional (x_next, a_next) -> x_next that re-imposes known content (inpainting).
    progress: optional wrapper of the plan's iterator, e.g. a tqdm progress bar.
    """
    state, plan = None, scheduler.plan(num_steps)[start:]
    for index, (timestep, a_t, a_next) in enumerate(plan if progress is None else progress(plan), start):
        x, x0, state = scheduler.step(x, denoise(x, timestep, a_t), a_t, a_next, state)
        if keep is not None:
            x = keep(x, a_next)
        if on_step is not None:
            on_step(index, x, x0)
    return x


def invert(denoise, images, plan, refine_steps=0):
    """DDIM inversion: the deterministic (eta = 0) path run backwards, from images to the noise that generates them.

    images: x at the cleanest level (1 after the last step of ``plan``), in the model's space.
    plan: the sampling plan (noisiest first); inversion walks it from the cleanest level up.
    refine_steps: fixed-point iterations per step. Plain DDIM inversion (0) predicts the
        noise at the current level, while sampling will predict it at the next one; each
        iteration re-predicts it there, solving the implicit step so that sampling the
        result returns the images exactly (up to the network's consistency). 2 or 3 are
        usually enough.
    """
    x = keras.ops.convert_to_tensor(images, "float32")
    levels = [(timestep, a_t) for timestep, a_t, _ in reversed(plan)]
    a_here = plan[-1].a_next  # the clean end
    called_at = levels[0]  # where the noise in x is read: first the cleanest timestep, then the level x is at
    for timestep, a_t in levels:
        x_up = _step_up(x, denoise(x, *called_at), a_here, a_t)
        for _ in range(refine_steps):
            x_up = _step_up(x, denoise(x_up, timestep, a_t), a_here, a_t)
        x, a_here, called_at = x_up, a_t, (timestep, a_t)
    return x


def _step_up(x, noise, a_here, a_up):
    """The eta = 0 update solved for the noisier level a_up: the exact inverse of ``DDIM.step`` for a given noise."""
    x0, _ = clean_estimate(x, noise, a_here)
    return math.sqrt(a_up) * x0 + math.sqrt(1.0 - a_up) * noise
