"""The quality metrics: each module of this package registers its metrics with
``kopt.quality.registry.metric`` on import, and the registry imports every module here to find them."""
