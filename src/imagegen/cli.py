"""The course's command line: text-to-image, image-to-image and inpainting with a named model.

    python -m imagegen generate "a blue flower with six petals" --preset mini --steps 25 --guidance 7.5 --seed 0 --batch 4 -o out.png
    python -m imagegen img2img "a red flower with five petals" --image in.png --strength 0.6 -o out.png
    python -m imagegen inpaint "a yellow flower with eight petals" --image in.png --box 16,16,48,48 -o out.png
    python -m imagegen generate "an astronaut riding a horse" --preset sd-v1.4 -o astronaut.png     # 4 GB download once
    python -m imagegen generate "a castle" --diffusers path/to/stable-diffusion-v1-5 -o castle.png

A batch is saved as one grid image. "mini" ships with the package and runs
offline in seconds; "sd-v1.4" and --diffusers need their weights.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from imagegen import config


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
        model = command.add_mutually_exclusive_group()
        model.add_argument("--preset", default="mini", choices=["mini", "sd-v1.4"], help="named weights (default: mini)")
        model.add_argument("--diffusers", metavar="PATH", help="a diffusers SD v1 folder (safetensors)")
        command.add_argument("--height", type=int, help="pixels (default: the model's own size: 64 mini, 512 SD)")
        command.add_argument("--width", type=int)
        command.add_argument("--steps", type=int, default=25)
        command.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
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
    return parser


def _pipeline(args):
    from imagegen.stable_diffusion import StableDiffusion

    if args.steps < 1:
        raise UsageError(f"--steps must be 1 or more, got {args.steps}")
    kwargs = dict(img_height=args.height, img_width=args.width, scheduler=args.scheduler)
    if args.diffusers:
        path = pathlib.Path(args.diffusers).expanduser()
        if not path.exists() and (args.diffusers.startswith((".", "/", "~")) or args.diffusers.count("/") > 1):
            raise FileNotFoundError(f"--diffusers {args.diffusers}: no such folder (give a diffusers SD v1 folder "
                                    "with unet/, vae/ and text_encoder/, or a Hugging Face repo id)")
        size = 512
        kwargs = {**kwargs, "img_height": args.height or size, "img_width": args.width or size}
        return StableDiffusion.from_diffusers(args.diffusers, **kwargs)
    return StableDiffusion.from_preset(args.preset, dtype=config.mixed_precision_policy(), **kwargs)  # half on GPU/TPU


def _load_image(path, height, width):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path).convert("RGB")
    except FileNotFoundError:
        raise UsageError(f"--image {path}: no such file") from None
    except UnidentifiedImageError:
        raise UsageError(f"--image {path}: not an image PIL can read (use PNG or JPEG)") from None
    scale = max(height / image.height, width / image.width)  # cover, then crop the centre
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.LANCZOS)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return np.asarray(resized.crop((left, top, left + width, top + height)), dtype=np.uint8)


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
    from imagegen.data.download import OfflineError

    args = _parser().parse_args(argv)
    try:
        run(args)
    except (UsageError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OfflineError, FileNotFoundError) as error:
        print(f"error: the weights are not available: {error}", file=sys.stderr)
        return 3
    return 0
