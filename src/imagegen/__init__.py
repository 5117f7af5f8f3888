"""imagegen: the library behind "Theory and Application of Image Generation".

The notebooks tell the story; the reusable code lives here, one concept per module:
- ``imagegen.modes``: quick or full mode, and ``pick`` between their settings;
- ``imagegen.environment``: ``print_environment`` (at the top of every notebook) and ``set_seed``;
- ``imagegen.devices``: the accelerator, distribution over it, mixed precision;
- ``imagegen.paths``, ``imagegen.network``: the cache folder; the network probe and the offline guard;
- ``imagegen.data``: data sets (real in full mode, offline stand-ins in quick mode), downloads;
- ``imagegen.viz``: image grids, strips, GIFs, and figures exported for the slides.
"""

__version__ = "0.1.0"
