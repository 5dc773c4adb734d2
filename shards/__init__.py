"""melstream shards: the on-disk contract (writer, reader, manifest, verify, inspect).

Depends on nothing else of melstream.  Spec: docs/shard-format.md.
"""
from .codec import (
    CHUNK_FRAMES,
    CODECS,
    DEFAULT_CODEC,
    ChunkedMel,
    CodecError,
    decode_mel,
    decode_mel_frames,
    encode_mel,
    load_payload,
    payload_to_mel,
)
from .format import FORMAT_VERSION, MANIFEST, check_key, shard_name
from .manifest import ManifestError, build_manifest, read_manifest, read_parts, validate_manifest
from .reader import decode_members, iter_dir, iter_tar_index, iter_tar_samples, shard_paths, to_example, wds_decoder
from .verify import verify_dir
from .writer import ShardWriter, sha256_file

__all__ = [
    "CHUNK_FRAMES", "CODECS", "DEFAULT_CODEC", "ChunkedMel", "CodecError", "decode_mel", "decode_mel_frames", "encode_mel",
    "load_payload", "payload_to_mel",
    "FORMAT_VERSION", "MANIFEST", "check_key", "shard_name", "ManifestError", "build_manifest", "read_manifest",
    "read_parts", "validate_manifest", "decode_members", "iter_dir", "iter_tar_index", "iter_tar_samples", "shard_paths",
    "to_example", "wds_decoder", "verify_dir", "ShardWriter", "sha256_file",
]
