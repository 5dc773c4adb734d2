"""Help text for the codec option (the codecs themselves live in ``shards.codec``)."""
CODEC_HELP = ("f16planes (default): lossless float16, byte planes; f16: lossless plain float16 .npy; "
              "u8: lossy 8-bit with a per-clip scale (error bound recorded in the manifest)")
