"""Decoders from an embedding to log-mel slices ``[B, out_slices, F, N]`` (Audio2Vec, AutoEncoder).

* ``mobile`` -- Tagliasacchi et al. 2019, Sec. 3: "the architecture of the decoder is obtained by
  reversing the order of the layers in the encoder and replacing max-pooling with nearest-neighbor
  upsampling"; for skip-gram "the last convolutional layer has 2P output channels".  The encoder's
  global max-pool + FC is inverted by an FC (+ ReLU) to the ``128w x F/32 x N/32`` map (the paper
  does not say how; a spatially constant map could not be decoded), then five layers
  ``upsample x2 -> (3x1 time conv -> BN -> ReLU -> 1x3 freq conv) + 1x1 conv -> BN -> ReLU`` with
  channels 128w -> 64w -> 32w -> 16w -> 8w -> ``out_slices``; the last layer is linear (no BN/ReLU,
  convs with bias) since it regresses log-mel values for the MSE loss.  Sizes not divisible by 32
  are upsampled past the target and cropped.
* ``mlp`` -- the generic decoder for every other encoder: ``Linear(in_dim, hidden) -> ReLU ->
  Linear(hidden, out_slices * F * N)``, reshaped.

``out_slices`` is 1 for CBoW and the AutoEncoder and 2P for skip-gram; ``in_dim`` is the
encoder's ``embedding_dim`` (AutoEncoder, skip-gram) or ``2P * embedding_dim`` (CBoW).

One module per decoder in this folder; ``models.DECODERS`` imports them on first lookup
(``@DECODERS.register("name")``, see docs/contracts.md).
"""
from .base import Decoder, build_decoder
from .mlp import MLPDecoder
from .mobile import MobileDecoder

__all__ = ["Decoder", "MLPDecoder", "MobileDecoder", "build_decoder"]
