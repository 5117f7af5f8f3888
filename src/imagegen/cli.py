"""The course's command line: text-to-image, image-to-image and inpainting with a named model.

    python -m imagegen generate "an astronaut riding a horse" --preset mini --steps 25 --seed 0 --batch 4 -o out.png
    python -m imagegen img2img "a horse on the moon" --image in.png --strength 0.6 -o out.png
    python -m imagegen inpaint "a lake" --image in.png --box 16,16,48,48 -o out.png
    python -m imagegen generate "an astronaut riding a horse" --preset sd-v1.4 -o astronaut.png     # 4 GB download once
    python -m imagegen generate "a castle" --diffusers path/to/stable-diffusion-v1-5 -o castle.png
    python -m imagegen generate "a castle" --single-file v1-5-pruned-emaonly.safetensors -o castle.png
    python -m imagegen verify --preset sd-v1.4        # KerasCV's golden values: are the weights read right?

A batch is saved as one grid image. "mini" ships with the package and runs
offline in seconds; "sd-v1.4", --diffusers and --single-file need their weights.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from imagegen.devices import mixed_precision_policy


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def _parser():
    parser = argparse.ArgumentParser(prog="python -m imagegen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("generate", "text to image"), ("img2img", "repaint an image towards a prompt"),
                            ("inpaint", "regenerate a masked region of an image")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("prompt")
        command.add_argument("--negative", help="negative prompt: what to steer away from")
        _model_arguments(command, presets=["mini", "sd-v1.4"], default="mini")
        command.add_argument("--height", type=int, help="pixels (default: the model's own size: 64 mini, 512 SD)")
        command.add_argument("--width", type=int)
        command.add_argument("--steps", type=int, default=25)
        command.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the "
                             "model's own: 7.5 for SD, the mini's is in its mini.json)")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--scheduler", default="ddim", choices=["ddim", "dpm++2m"])
        command.add_argument("-o", "--output", default="out.png", help="PNG file (a batch becomes one grid)")
        if name == "generate":
            command.add_argument("--batch", type=int, default=1, help="images per prompt")
        else:
            command.add_argument("--image", required=True, help="the input image (resized and centre-cropped to the model's size)")
        if name == "img2img":
            command.add_argument("--strength", type=float, default=0.6, help="in (0, 1]: how much to change (default 0.6)")
        if name == "inpaint":
            where = command.add_mutually_exclusive_group(required=True)
            where.add_argument("--mask", help="a mask image: white = repaint, black = keep")
            where.add_argument("--box", help="x0,y0,x1,y1 in pixels of the model's size: the rectangle to repaint")
    verify = commands.add_parser("verify", help="check SD v1 weights against KerasCV's published golden values")
    _model_arguments(verify, presets=["sd-v1.4"], default="sd-v1.4")
    return parser


def _model_arguments(command, presets, default):
    model = command.add_mutually_exclusive_group()
    model.add_argument("--preset", default=default, choices=presets, help=f"named weights (default: {default})")
    model.add_argument("--diffusers", metavar="PATH", help="a diffusers SD v1 folder or Hugging Face repo id (safetensors)")
    model.add_argument("--single-file", metavar="FILE", help="an SD v1.x checkpoint in one .safetensors file")
    command.add_argument("--variant", choices=["fp16"], help="with --diffusers: download the half-size .fp16 files")


def _pipeline(args):
    from imagegen.stable_diffusion import from_diffusers, from_preset, from_single_file

    verifying = args.command == "verify"
    if not verifying and args.steps < 1:
        raise UsageError(f"--steps must be 1 or more, got {args.steps}")
    # The golden check computes in float32 anyway; generation runs in half precision on a GPU or TPU.
    dtype = None if verifying else mixed_precision_policy()
    kwargs = {} if verifying else dict(img_height=args.height, img_width=args.width, scheduler=args.scheduler)
    if args.variant and not args.diffusers:
        raise UsageError("--variant applies to --diffusers repositories only")
    if args.diffusers:
        path = pathlib.Path(args.diffusers).expanduser()
        if not path.exists() and (args.diffusers.startswith((".", "/", "~")) or args.diffusers.count("/") > 1):
            raise FileNotFoundError(f"--diffusers {args.diffusers}: no such folder (give a diffusers SD v1 folder "
                                    "with unet/, vae/ and text_encoder/, or a Hugging Face repo id)")
        return from_diffusers(args.diffusers, dtype=dtype, variant=args.variant, **kwargs)
    if args.single_file:
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        return from_single_file(args.single_file, dtype=dtype, **kwargs)
    return from_preset(args.preset, dtype=dtype, **kwargs)


def verify(args):
    """Exit status 0 when the weights reproduce the golden values, 1 when they do not."""
    from imagegen.stable_diffusion.verify import WeightsMismatch, verify_weights

    name = args.preset if not (args.diffusers or args.single_file) else (args.diffusers or args.single_file)
    try:
        verify_weights(_pipeline(args), name)
    except WeightsMismatch as error:
        note = "" if name == "sd-v1.4" else (" (a fine-tune that retrained its text encoder or VAE differs from "
                                             "SD v1.4's on purpose)")
        print(f"mismatch: {error}{note}", file=sys.stderr)
        return 1
    return 0


def _load_image(path, height, width):
    """The --image file as uint8 (height, width, 3): centre-cropped to the model's aspect, then resized."""
    from PIL import Image, UnidentifiedImageError

    from imagegen.data.samples import resize_crop

    try:
        image = Image.open(path).convert("RGB")
    except FileNotFoundError:
        raise UsageError(f"--image {path}: no such file") from None
    except UnidentifiedImageError:
        raise UsageError(f"--image {path}: not an image PIL can read (use PNG or JPEG)") from None
    return resize_crop(np.asarray(image, dtype=np.uint8), height, width)


def _mask(args, height, width):
    from PIL import Image

    if args.box:
        try:
            x0, y0, x1, y1 = (int(v) for v in args.box.split(","))
        except ValueError:
            raise UsageError(f"--box must be four integers x0,y0,x1,y1, got {args.box!r}") from None
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise UsageError(f"--box {args.box} must satisfy 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
        mask = np.zeros((height, width), dtype=np.float32)
        mask[y0:y1, x0:x1] = 1.0
        return mask
    try:
        image = Image.open(args.mask).convert("L")
    except FileNotFoundError:
        raise UsageError(f"--mask {args.mask}: no such file") from None
    if image.size != (width, height):
        image = image.resize((width, height), Image.NEAREST)
    mask = np.asarray(image, dtype=np.float32) / 255.0
    if mask.max() < 0.5:
        raise UsageError(f"--mask {args.mask} has no white pixels: white marks what to repaint")
    return mask


def run(args):
    from PIL import Image

    from imagegen import viz

    output = pathlib.Path(args.output)
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"-o {args.output}: give a .png or .jpg file name")
    if args.command == "generate" and args.batch < 1:
        raise UsageError(f"--batch must be 1 or more, got {args.batch}")
    pipeline = _pipeline(args)
    if args.guidance is None:
        from imagegen.stable_diffusion.presets import default_guidance

        args.guidance = default_guidance(None if args.diffusers or args.single_file else args.preset)
    common = dict(negative_prompt=args.negative, num_steps=args.steps, unconditional_guidance_scale=args.guidance,
                  seed=args.seed)
    if args.command == "generate":
        images = pipeline.text_to_image(args.prompt, batch_size=args.batch, **common)
    else:
        image = _load_image(args.image, pipeline.img_height, pipeline.img_width)
        if args.command == "img2img":
            images = pipeline.image_to_image(args.prompt, image, strength=args.strength, **common)
        else:
            images = pipeline.inpaint(args.prompt, image, _mask(args, pipeline.img_height, pipeline.img_width), **common)
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(viz.tile(images, ncols=min(len(images), 4), padding=0)).save(output)  # a batch: one grid
    print(f"saved {len(images)} image(s) of {pipeline.img_width}x{pipeline.img_height} to {output}")
    return output


def main(argv=None):
    from imagegen.network import OfflineError

    args = _parser().parse_args(argv)
    try:
        if args.command == "verify":
            return verify(args)
        run(args)
    except (UsageError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OfflineError, FileNotFoundError) as error:
        print(f"error: the weights are not available: {error}", file=sys.stderr)
        return 3
    return 0
