"""Help text for the codec option (the codecs themselves live in ``shards.codec``)."""
CODEC_HELP = ("f16chunks (default): lossless float16 byte planes in independent 100-frame zstd chunks, so a "
              "reader decompresses only the chunks a crop needs; f16planes: the same bytes as one zstd frame; "
              "f16: lossless plain float16 .npy; u8: lossy 8-bit with a per-clip scale (error bound recorded in "
              "the manifest)")
