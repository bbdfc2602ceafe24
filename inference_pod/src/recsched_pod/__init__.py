"""RecSched inference pod: the DeepRecInfra model zoo behind an Open Inference Protocol v2 server.

The pod splits each query of N items into ceil(N/B) requests of B items and runs them on a pool of
single-threaded model workers (DeepRecSched's CPU knob). The same package also holds the router
(`--role router`), which sends whole queries of N >= T items to the GPU pool.

Layers, top to bottom (an import only ever points down; `make lint` enforces it): `cli` >
`app_factory` > `router/` | `dataplane/` (independent of each other) > `http/` > `models/` >
`live_config` > `config_document` | `metrics` | `settings` | `errors`.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
