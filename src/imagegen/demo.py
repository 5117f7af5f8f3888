"""The live-demo panel of notebook 08: ipywidgets controls around a ``StableDiffusion`` pipeline.

    panel = DemoPanel()          # presets load on first use: "mini" offline, "sd-v1.4" when its weights can be had
    panel = DemoPanel(weights=["v1-5-pruned-emaonly.safetensors", "path/to/diffusers-folder"])   # your own weights too
    panel.show()                 # in Jupyter: prompt, negative prompt, steps, guidance, seed, batch, preset, Generate

Clicking Generate renders a grid into the panel with a progress bar over the
denoising steps. ``panel.generate()`` does the same from code (tests and the
notebook's own check), and returns the uint8 images.
"""

from __future__ import annotations

import time


class DemoPanel:
    """Controls, a Generate button, a progress bar and the output grid.

    loaders: {preset name: function returning a pipeline}; by default "mini"
        (shipped) and "sd-v1.4" (downloaded once), each built on first use and kept.
    weights: more choices for the preset menu: single-file ``.safetensors`` checkpoints,
        diffusers folders or Hugging Face repo ids, listed by their file or folder name.
    """

    def __init__(self, loaders=None, prompt="an astronaut riding a horse", preset="mini", weights=()):
        import ipywidgets as widgets

        default = {"mini": _preset_loader("mini"), "sd-v1.4": _preset_loader("sd-v1.4")}
        self.loaders = dict(default if loaders is None else loaders)
        for source in [weights] if isinstance(weights, str) else weights:
            self.loaders[_weights_name(source)] = _weights_loader(source)
        if preset not in self.loaders:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(self.loaders)}")
        self.pipelines = {}
        style = {"description_width": "90px"}
        wide = widgets.Layout(width="520px")
        self.prompt = widgets.Text(prompt, description="prompt", style=style, layout=wide)
        self.negative = widgets.Text("", description="negative", placeholder="what to avoid (optional)", style=style, layout=wide)
        self.steps = widgets.IntSlider(25, min=1, max=100, description="steps", style=style)
        self.guidance = widgets.FloatSlider(_guidance_of(preset), min=0.0, max=15.0, step=0.5, description="guidance",
                                            style=style)
        self.seed = widgets.IntText(0, description="seed", style=style)
        self.batch = widgets.IntSlider(4, min=1, max=8, description="batch", style=style)
        self.preset = widgets.Dropdown(options=list(self.loaders), value=preset, description="preset", style=style)
        self.button = widgets.Button(description="Generate", button_style="primary", icon="paint-brush")
        self.progress = widgets.IntProgress(0, min=0, max=1, description="", layout=widgets.Layout(width="300px"))
        self.status = widgets.HTML("")
        self.output = widgets.Output()
        self.button.on_click(lambda _: self.generate())
        # Choosing another model sets its own guidance: 7.5 for SD, less for the mini.
        self.preset.observe(lambda change: setattr(self.guidance, "value", _guidance_of(change["new"])), names="value")
        controls = widgets.VBox([self.prompt, self.negative, widgets.HBox([self.steps, self.guidance]),
                                 widgets.HBox([self.seed, self.batch]), self.preset,
                                 widgets.HBox([self.button, self.progress, self.status])])
        self.widget = widgets.VBox([controls, self.output])
        self.last_images = None

    def show(self):
        """Display the panel. Its plain-text form, what an executed copy or a terminal shows instead of the
        live widget, says what the panel is rather than ipywidgets' repr (``VBox(children=...)``)."""
        from IPython.display import display

        bundle = self.widget._repr_mimebundle_() or {}
        bundle["text/plain"] = self.describe()
        display(bundle, raw=True)
        return self

    def describe(self):
        """One line naming the panel's controls and their values."""
        return (f"Demo panel (run this cell in Jupyter or Colab to use it): prompt {self.prompt.value!r}, "
                f"steps {self.steps.value}, guidance {self.guidance.value}, seed {self.seed.value}, "
                f"batch {self.batch.value}, preset {self.preset.value!r}")

    def pipeline(self):
        """The selected preset's pipeline, built on first use."""
        name = self.preset.value
        if name not in self.pipelines:
            self.status.value = f"loading {name}..."
            self.pipelines[name] = self.loaders[name]()
        return self.pipelines[name]

    def generate(self):
        """Render a grid for the current settings into the panel; returns uint8 images (or None on an error)."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        from imagegen import viz

        self.button.disabled = True
        try:
            try:
                pipeline = self.pipeline()
            except Exception as error:  # noqa: BLE001 - shown to the presenter, who picks another preset
                self.status.value = f"<b>{self.preset.value} is not available:</b> {_first_line(error)}"
                return None
            steps = self.steps.value
            self.progress.max, self.progress.value = steps, 0
            self.status.value = "generating..."
            started = time.perf_counter()

            def on_step(index, _latents, _x0):
                self.progress.value = index + 1

            encoded = pipeline.encode_text(self.prompt.value)
            try:
                images = pipeline.generate_image(encoded, negative_prompt=self.negative.value or None,
                                                 batch_size=self.batch.value, num_steps=steps,
                                                 unconditional_guidance_scale=self.guidance.value, seed=self.seed.value,
                                                 on_step=on_step)
            except ValueError as error:
                self.status.value = f"<b>error:</b> {error}"
                return None
            seconds = time.perf_counter() - started
            self.status.value = f"{len(images)} image(s) in {seconds:.1f} s"
            self.output.clear_output(wait=True)
            figure = viz.image_grid(images, ncols=min(4, len(images)), size=2.4,
                                    suptitle=f"{self.prompt.value!r}, seed {self.seed.value}")
            plt.close(figure)  # shown in the panel's output only, not again below the cell
            with self.output:
                display(figure)
            self.last_images = images
            return images
        finally:
            self.button.disabled = False


def _preset_loader(name):
    def load():
        from imagegen.devices import mixed_precision_policy
        from imagegen.stable_diffusion import from_preset

        # Half precision on a GPU or TPU (float32 on a CPU): faster, and batch 8 fits a 15 GB T4.
        return from_preset(name, progress=False, dtype=mixed_precision_policy())

    return load


def _weights_name(source):
    import pathlib

    path = pathlib.Path(str(source))
    return path.stem if path.suffix == ".safetensors" else (path.name if path.exists() else str(source))


def _weights_loader(source):
    """A single .safetensors checkpoint, or a diffusers folder or repo id, loaded on first use."""

    def load():
        from imagegen.devices import mixed_precision_policy
        from imagegen.stable_diffusion import from_diffusers, from_single_file

        dtype = mixed_precision_policy()
        if str(source).endswith((".safetensors", ".ckpt")):  # .ckpt: refused with how to convert it
            return from_single_file(source, progress=False, dtype=dtype)
        return from_diffusers(source, progress=False, dtype=dtype)

    return load


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _guidance_of(preset):
    from imagegen.stable_diffusion.presets import default_guidance

    return default_guidance(preset)
