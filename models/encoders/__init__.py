"""Encoder implementations; importing this package registers them in ``models.ENCODERS``."""
from . import audio_ntt, mobile, slowfast_nfnet, timm_encoders  # noqa: F401
from . import audio_ntt2022, vit  # noqa: F401
