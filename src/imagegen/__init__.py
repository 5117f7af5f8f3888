"""imagegen: the library behind "Theory and Application of Image Generation".

The notebooks tell the story; the reusable code lives here, one concept per module:
- ``imagegen.config``: quick/full mode, accelerator, distribution, seeds, cache, precision;
- ``imagegen.data``: data sets (real in full mode, offline stand-ins in quick mode), downloads;
- ``imagegen.viz``: image grids, strips, GIFs, and figures exported for the slides.
"""

__version__ = "0.1.0"
