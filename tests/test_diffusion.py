"""Diffusion: schedules, the DDIM sampler against oracle denoisers, the model's EMA, saving."""

import keras
import numpy as np
import pytest

from imagegen.diffusion import (
    CosineSchedule,
    DiffusionModel,
    DiscreteSchedule,
    build_unet,
    DDIM,
    DPMSolverPlusPlus,
    classifier_free_guidance,
    get_schedule,
    get_scheduler,
    invert,
    sample,
)
from imagegen.diffusion.spacing import SPACINGS
from imagegen.environment import set_seed

SCHEDULES = [CosineSchedule(), DiscreteSchedule.linear(), DiscreteSchedule.scaled_linear()]


def one_point_oracle(schedule, point):
    """The exact noise for data that is a single point x*: eps = (x_t - sqrt(a) x*) / sqrt(1 - a)."""
    def denoise(x, timestep, a):
        assert a == pytest.approx(float(schedule.alpha_bar(timestep)), rel=1e-9)  # the plan's level is the timestep's
        return (keras.ops.convert_to_numpy(x) - np.sqrt(a) * point) / np.sqrt(1 - a)
    return denoise


def gaussian_oracle(mean, std):
    """The optimal denoiser for data ~ N(mean, std^2): E[x0 | x_t] = mean + sqrt(a) std^2 (x_t - sqrt(a) mean) / (a std^2 + 1 - a)."""
    def denoise(x, timestep, a):
        x = keras.ops.convert_to_numpy(x)
        x0 = mean + np.sqrt(a) * std**2 * (x - np.sqrt(a) * mean) / (a * std**2 + 1 - a)
        return (x - np.sqrt(a) * x0) / np.sqrt(1 - a)
    return denoise


# -- schedules ------------------------------------------------------------------------------

def test_cosine_schedule_ends_where_specified_and_is_monotone():
    schedule = CosineSchedule(min_signal_rate=0.02, max_signal_rate=0.95)
    signal, noise = (keras.ops.convert_to_numpy(r) for r in schedule.rates(np.array([0.0, 1000.0])))
    np.testing.assert_allclose(signal, [0.95, 0.02], rtol=1e-5)
    np.testing.assert_allclose(signal**2 + noise**2, 1.0, rtol=1e-5)
    alpha_bars = schedule.alpha_bar(np.linspace(0, 1000, 101))
    assert np.all(np.diff(alpha_bars) < 0)


def test_scaled_linear_is_stable_diffusions_schedule():
    schedule = DiscreteSchedule.scaled_linear()
    assert schedule.num_train_steps == 1000
    np.testing.assert_allclose(schedule.betas[[0, -1]], [0.00085, 0.012], rtol=1e-9)
    np.testing.assert_allclose(schedule.alpha_bars[0], 1 - 0.00085, rtol=1e-9)
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    np.testing.assert_allclose(schedule.alpha_bars[-1], np.prod(1 - betas), rtol=1e-9)
    assert 0.004 < schedule.alpha_bars[-1] < 0.005
    assert np.all(np.diff(schedule.alpha_bars) < 0) and np.all(np.diff(schedule.betas) > 0)


def test_linear_is_ddpms_schedule_and_timesteps_match_keras_cv():
    schedule = DiscreteSchedule.linear()
    np.testing.assert_allclose(schedule.alpha_bars[0], 1 - 1e-4)
    assert schedule.alpha_bars[-1] < 1e-4
    timesteps = DiscreteSchedule.scaled_linear().timesteps(50)
    assert timesteps[0] == 999 and timesteps[-1] == 0 and len(timesteps) == 50  # round(i * 999 / 49), reversed
    assert list(DiscreteSchedule.scaled_linear().timesteps(5)) == [999, 749, 500, 250, 0]  # KerasCV's 5 steps


@pytest.mark.parametrize("spacing", SPACINGS)
def test_every_plan_has_exactly_the_steps_asked_for(spacing):
    """n = 1 to 1000, for every spacing (and the cosine schedule): n steps, noisiest first, each to a cleaner level.

    The old rule, range(1, T, T // n), gave n + 1 or more steps whenever n did not divide 1000.
    """
    schedule = DiscreteSchedule.scaled_linear(spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    for n in range(1, 1001):
        plan = schedule.plan(n)
        timesteps = np.array([step.timestep for step in plan])
        assert len(plan) == n and 0 <= timesteps.min() and timesteps.max() <= 999, n
        assert np.all(np.diff(timesteps) < 0) and all(step.a_next > step.a_t for step in plan), n
    for n in (1, 7, 30, 600, 1000):
        assert len(CosineSchedule().plan(n)) == n


@pytest.mark.parametrize("schedule", [CosineSchedule(), DiscreteSchedule.scaled_linear(),
                                      DiscreteSchedule.scaled_linear(spacing="leading", steps_offset=1)],
                         ids=["cosine", "keras_cv", "leading"])
def test_one_step_starts_at_the_noisiest_level_and_lands_on_data(schedule):
    """num_steps=1 once returned decoded noise: its one step started at timestep 0 (or 1)."""
    (step,) = schedule.plan(1)
    assert step.timestep == schedule.plan(1000)[0].timestep and step.a_t < 0.005
    point = np.full((1, 2, 2, 1), 0.7, "float32")
    noise = np.random.default_rng(0).normal(size=point.shape).astype("float32")
    result = sample(one_point_oracle(schedule, point), noise, DDIM(schedule), 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(result), point, atol=0.05)


def test_discretised_cosine_matches_the_continuous_one():
    cosine = CosineSchedule()
    discrete = DiscreteSchedule.from_continuous(cosine, 1000)
    np.testing.assert_allclose(discrete.alpha_bars, cosine.alpha_bar(np.arange(1, 1001)), rtol=1e-6, atol=1e-9)


def test_schedules_by_name_and_bad_names():
    assert get_schedule("scaled_linear").name == "scaled_linear"
    assert get_schedule({"name": "cosine", "min_signal_rate": 0.05}).min_signal_rate == 0.05
    with pytest.raises(ValueError, match="cosine"):
        get_schedule("sigmoid")


# -- the sampler against oracles ------------------------------------------------------------

@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_oracle_sampler_recovers_a_one_point_data_set(schedule, eta):
    point = np.random.default_rng(0).uniform(-1, 1, size=(3, 4, 4, 2)).astype("float32")
    noise = np.random.default_rng(1).normal(size=point.shape).astype("float32")
    result = sample(one_point_oracle(schedule, point), noise, DDIM(schedule, eta=eta, seed=3), 10)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(result), point, atol=1e-4)


def oracle_samples(schedule, num_steps, eta, mean=0.5, std=0.6, count=20_000, scheduler="ddim"):
    noise = np.random.default_rng(2).normal(size=(count, 1, 1, 1)).astype("float32")
    options = {"eta": eta, "seed": 4} if eta else {}
    return keras.ops.convert_to_numpy(sample(gaussian_oracle(mean, std), noise, get_scheduler(scheduler, schedule, **options),
                                             num_steps))


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_oracle_sampler_converges_to_the_data_distribution(eta):
    """Data ~ N(0.5, 0.6^2) with its exact denoiser: samples take its mean and std, more exactly with more steps."""
    schedule = DiscreteSchedule.scaled_linear()
    errors = []
    for num_steps in (10, 50, 200):
        samples = oracle_samples(schedule, num_steps, eta)
        assert abs(samples.mean() - 0.5) < 0.03
        errors.append(abs(samples.std() - 0.6))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.025  # discretisation error shrinks with steps


def test_both_samplers_solve_the_same_ode_in_pixel_space():
    """DDIM and DPM-Solver++(2M) on one plan and oracle converge to one solution (DDIM at 500 steps, same noise)."""
    schedule = DiscreteSchedule.scaled_linear()
    exact = oracle_samples(schedule, 500, 0.0, count=2000)
    errors = {name: [np.abs(oracle_samples(schedule, n, 0.0, count=2000, scheduler=name) - exact).mean() for n in (10, 100)]
              for name in ("ddim", "dpm++2m")}
    assert all(coarse > fine and fine < 0.01 for coarse, fine in errors.values()), errors
    with pytest.raises(ValueError, match="eta is DDIM's"):
        get_scheduler("dpm++2m", schedule, eta=1.0)
    assert isinstance(get_scheduler("dpm++2m", schedule), DPMSolverPlusPlus)


def test_cosine_schedule_ends_at_the_posterior_mean_of_its_cleanest_level():
    """keras.io's schedule stops at signal rate 0.95, so the last step returns E[x0 | x_t] there.

    For N(m, s^2) data at level a0 that estimate has std s * sqrt(a0 s^2 / (a0 s^2 + 1 - a0)): a known
    shrinkage the sampler must reproduce exactly (with fine steps).
    """
    schedule = CosineSchedule()
    a0, s = 0.95**2, 0.6
    samples = oracle_samples(schedule, 200, 0.0, std=s)
    assert abs(samples.std() - s * np.sqrt(a0 * s**2 / (a0 * s**2 + 1 - a0))) < 0.01
    assert abs(samples.mean() - 0.5) < 0.01


@pytest.mark.parametrize("schedule", [CosineSchedule(), DiscreteSchedule.scaled_linear()], ids=lambda s: s.name)
def test_inversion_then_sampling_returns_the_image(schedule):
    plan = schedule.plan(50)
    data = np.random.default_rng(5).normal(0.1, 0.3, size=(64, 2, 2, 1)).astype("float32")
    oracle = gaussian_oracle(0.1, 0.3)
    errors = {}
    for refine_steps in (0, 15):  # fixed-point error shrinks geometrically (by ~0.54 per iteration at worst here)
        noise = invert(oracle, data, plan, refine_steps=refine_steps)
        back = keras.ops.convert_to_numpy(sample(oracle, noise, DDIM(schedule), 50))
        errors[refine_steps] = np.max(np.abs(back - data))
        assert keras.ops.convert_to_numpy(noise).std() > 2 * data.std()  # it really went to the noise end
    assert errors[15] < 1e-3  # refined inversion is exact for a consistent denoiser
    assert errors[0] > 10 * errors[15]  # plain DDIM inversion is only approximate


# -- the model ------------------------------------------------------------------------------

def tiny_model(**kwargs):
    set_seed(0)
    network = build_unet(8, 3, widths=(8, 16), block_depth=1, embedding_dims=16)
    model = DiffusionModel(network, seed=0, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def tiny_images(count=32):
    images = np.zeros((count, 8, 8, 3), dtype="float32")
    images[:, 2:6, 2:6, 0] = 1.0  # a red square
    return images


def test_deterministic_sampling_with_eta_zero():
    model = tiny_model()
    first, again = model.generate(4, num_steps=5, seed=7), model.generate(4, num_steps=5, seed=7)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (4, 8, 8, 3) and first.min() >= 0 and first.max() <= 1
    noise = model.initial_noise(4, seed=8)
    np.testing.assert_array_equal(model.generate(initial_noise=noise, num_steps=5, seed=1),
                                  model.generate(initial_noise=noise, num_steps=5, seed=2))
    stochastic = [model.generate(initial_noise=noise, num_steps=5, eta=1.0, seed=s, use_ema=False) for s in (1, 2)]
    assert not np.allclose(*stochastic)


def test_training_lowers_the_loss_and_moves_the_ema():
    model = tiny_model(ema_momentum=0.9)
    initial_ema = [np.array(w) for w in model.ema_network.weights]
    history = model.fit(tiny_images(), epochs=40, batch_size=16, verbose=0).history["noise_loss"]
    assert history[-1] < 0.8 * history[0]
    network, ema = model.network.get_weights(), model.ema_network.get_weights()
    moved = [not np.allclose(a, b) for a, b in zip(initial_ema, ema) if a.size > 1]
    differs = [not np.allclose(a, b) for a, b in zip(network, ema) if a.size > 1]
    assert all(moved) and any(differs)  # EMA follows the network, smoothed


def test_ema_update_is_the_moving_average():
    model = tiny_model()
    old_ema = [np.array(w) for w in model.ema_network.weights]
    new = [w + 1.0 for w in model.network.get_weights()]
    model.network.set_weights(new)
    model.update_ema(momentum=0.9)
    for ema_weight, previous, target in zip(model.ema_network.get_weights(), old_ema, new):
        np.testing.assert_allclose(ema_weight, 0.9 * previous + 0.1 * target, rtol=1e-5, atol=1e-6)
    warmup = keras.ops.convert_to_numpy(model.ema_momentum_at(np.array([0, 10, 100_000])))
    np.testing.assert_allclose(warmup, [0.1, 11 / 20, 0.999], rtol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(schedule="scaled_linear", loss="mse")
    model.fit(tiny_images(), epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "ddim.keras")
    loaded = keras.models.load_model(tmp_path / "ddim.keras")
    noise = model.initial_noise(2, seed=3)
    np.testing.assert_allclose(model.generate(initial_noise=noise, num_steps=4),
                               loaded.generate(initial_noise=noise, num_steps=4), atol=1e-6)
    assert loaded.schedule.name == "scaled_linear" and loaded.loss_name == "mse"
    for a, b in zip(model.ema_network.get_weights(), loaded.ema_network.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_inversion_round_trip():
    model = tiny_model()
    model.fit(tiny_images(), epochs=5, batch_size=16, verbose=0)
    images = tiny_images(2) * 0.8 + 0.1
    errors = []
    for refine_steps in (0, 5):
        noise = model.invert(images, num_steps=10, refine_steps=refine_steps)
        assert noise.shape == (2, 8, 8, 3) and np.isfinite(noise).all()
        back = model.generate(initial_noise=noise, num_steps=10, clip_denoised=False)
        errors.append(np.max(np.abs(back - images)))
    assert errors[1] < errors[0] and errors[1] < 0.1


def test_bad_arguments():
    with pytest.raises(ValueError, match="loss"):
        tiny_model(loss="huber")
    with pytest.raises(ValueError, match="divide"):
        build_unet(10, 3, widths=(8, 16, 32))


# -- text conditioning -------------------------------------------------------------------------

CONTEXT_LENGTH, CONTEXT_DIM = 4, 6


def tiny_conditional_model(**kwargs):
    set_seed(0)
    network = build_unet(8, 3, widths=(8, 16), block_depth=1, attention_resolutions=(4,), embedding_dims=16,
                         context_dim=CONTEXT_DIM, context_length=CONTEXT_LENGTH, heads=2)
    model = DiffusionModel(network, seed=0, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.set_null_context(np.zeros((CONTEXT_LENGTH, CONTEXT_DIM), "float32"))
    return model


def contexts(count, seed=0):
    return np.random.default_rng(seed).normal(size=(count, CONTEXT_LENGTH, CONTEXT_DIM)).astype("float32")


def test_guidance_formula():
    conditional, unconditional = np.full((2, 3), 2.0, "float32"), np.full((2, 3), 0.5, "float32")
    np.testing.assert_allclose(classifier_free_guidance(conditional, unconditional, 1.0), conditional)
    np.testing.assert_allclose(classifier_free_guidance(conditional, unconditional, 0.0), unconditional)
    np.testing.assert_allclose(classifier_free_guidance(conditional, unconditional, 7.5), 0.5 + 7.5 * 1.5)


def test_guidance_scale_one_equals_the_conditional_prediction():
    model = tiny_conditional_model()
    model.fit({"images": tiny_images(16), "context": contexts(16)}, epochs=2, batch_size=8, verbose=0)  # non-trivial weights
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 3)).astype("float32")
    context, negative = contexts(3, seed=2), contexts(3, seed=3)
    times = np.full((3, 1), 600.0, "float32")
    a_t = float(model.schedule.alpha_bar(600.0))
    conditional = keras.ops.convert_to_numpy(model.ema_network([x, times, context]))
    unconditional = keras.ops.convert_to_numpy(model.ema_network([x, times, negative]))
    guided_one = keras.ops.convert_to_numpy(model.denoiser(True, context, negative, 1.0)(x, 600.0, a_t))
    np.testing.assert_allclose(guided_one, conditional, atol=1e-5)
    # At s = 3 the single doubled-batch call equals the two predictions combined by hand.
    guided = keras.ops.convert_to_numpy(model.denoiser(True, context, negative, 3.0)(x, 600.0, a_t))
    np.testing.assert_allclose(guided, unconditional + 3.0 * (conditional - unconditional), atol=1e-4)
    assert np.abs(conditional - unconditional).max() > 1e-4  # the context matters


def test_condition_dropout_replaces_captions_with_the_null_context():
    images, first, second = tiny_images(4), contexts(4, seed=5), contexts(4, seed=6)

    def prediction(dropout, context):
        model = tiny_conditional_model(condition_dropout=dropout)
        model.set_null_context(contexts(1, seed=9)[0])
        out = model.network.get_layer("out")  # zero-initialised: give it weights so the output shows the context
        out.kernel.assign(np.random.default_rng(0).normal(size=out.kernel.shape).astype("float32"))
        return keras.ops.convert_to_numpy(model({"images": images, "context": context}, training=True)[0])

    np.testing.assert_allclose(prediction(0.9999, first), prediction(0.9999, second), atol=1e-6)  # all dropped
    assert np.abs(prediction(0.0, first) - prediction(0.0, second)).max() > 1e-4  # none dropped


def test_conditional_generation_save_and_load(tmp_path):
    model = tiny_conditional_model(condition_dropout=0.2)
    model.fit({"images": tiny_images(16), "context": contexts(16)}, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "conditional.keras")
    loaded = keras.models.load_model(tmp_path / "conditional.keras")
    assert loaded.conditional and loaded.condition_dropout == 0.2
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.null_context), keras.ops.convert_to_numpy(loaded.null_context))
    noise, context = model.initial_noise(2, seed=3), contexts(2, seed=4)
    for scale in (1.0, 4.0):
        ours = model.generate(initial_noise=noise, num_steps=3, context=context, guidance_scale=scale)
        theirs = loaded.generate(initial_noise=noise, num_steps=3, context=context, guidance_scale=scale)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # One context broadcasts to every image; a negative context changes the result.
    one = model.generate(3, num_steps=3, seed=1, context=context[0], guidance_scale=4.0)
    negative = model.generate(3, num_steps=3, seed=1, context=context[0], negative_context=context[1], guidance_scale=4.0)
    assert one.shape == (3, 8, 8, 3) and np.abs(one - negative).max() > 1e-4


def test_conditional_bad_inputs():
    model = tiny_conditional_model()
    with pytest.raises(ValueError, match="needs a context"):
        model.generate(2, num_steps=2)
    with pytest.raises(ValueError, match="must end in shape"):
        model.generate(2, num_steps=2, context=np.zeros((2, 5, CONTEXT_DIM), "float32"))
    with pytest.raises(ValueError, match="1 or 2"):
        model.generate(2, num_steps=2, context=contexts(3))
    with pytest.raises(ValueError, match="dict"):
        model(tiny_images(2), training=True)
    with pytest.raises(ValueError, match="unconditional"):
        tiny_model().generate(2, num_steps=2, context=contexts(2))
    with pytest.raises(ValueError, match="condition_dropout"):
        tiny_conditional_model(condition_dropout=1.0)


def test_training_power_moves_training_times_towards_high_noise():
    uniform, skewed = CosineSchedule(), get_schedule({"name": "cosine", "training_power": 0.5})
    seed = keras.random.SeedGenerator(0)
    t_uniform = keras.ops.convert_to_numpy(uniform.training_levels(20_000, seed)[0])
    t_skewed = keras.ops.convert_to_numpy(skewed.training_levels(20_000, seed)[0])
    assert abs(t_uniform.mean() - 500) < 20 and abs(t_skewed.mean() - 2000 / 3) < 20  # E[sqrt(u)] = 2/3
    assert skewed.get_config()["training_power"] == 0.5
    with pytest.raises(ValueError, match="training_power"):
        CosineSchedule(training_power=0)


def test_v_prediction_targets_and_conversion_to_noise():
    set_seed(0)
    network = build_unet(8, 3, widths=(8, 16), block_depth=1, embedding_dims=16)  # zero-initialised output: v = 0
    model = DiffusionModel(network, prediction="v", seed=0)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    alpha_bar = float(model.schedule.alpha_bar(700.0))
    # noise = noise_rate * x_t + signal * v, and v = 0 here
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.denoiser(False)(x, 700.0, alpha_bar)), np.sqrt(1 - alpha_bar) * x,
                               atol=1e-6)
    images = np.random.default_rng(1).uniform(size=(4, 8, 8, 3)).astype("float32")
    _, target = model(images, training=True)
    assert target.shape == (4, 8, 8, 3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(images, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["noise_loss"]).all()
    with pytest.raises(ValueError, match="prediction must be one of"):
        DiffusionModel(network, prediction="x0")


def test_discrete_schedule_alpha_bar_reads_timesteps():
    schedule = DiscreteSchedule.scaled_linear()
    assert schedule.alpha_bar(500) == schedule.alpha_bars[500]
    np.testing.assert_array_equal(schedule.alpha_bar(np.array([0.0, 999.0])), schedule.alpha_bars[[0, 999]])


def test_samplers_and_conversions_keep_float32_with_numpy_levels():
    """Levels read from numpy tables arrive as np.float64: tensors must stay float32 on every backend."""
    from imagegen.diffusion import add_noise, to_epsilon

    x = keras.ops.ones((1, 2, 2, 1), dtype="float32")
    a_t, a_next = np.float64(0.5), np.float64(0.7)
    outputs = [add_noise(x, x, a_t), to_epsilon(x, x, a_t, "v")]
    for scheduler in (DDIM(), DDIM(eta=1.0, seed=0), DPMSolverPlusPlus()):
        outputs.extend(scheduler.step(x, x, a_t, a_next)[:2])
    assert {keras.backend.standardize_dtype(y.dtype) for y in outputs} == {"float32"}
