"""Adapters: the adapter interface (:mod:`adapters.base`), the codecs shared with the endpoint's
audio path (:mod:`adapters.codecs`), and one sub-package per native system (``rtp/``, …).
Nothing here imports ``bridge``."""
