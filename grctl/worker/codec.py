"""The codec's public import path (``from grctl.worker.codec import CodecRegistry``); the implementation
is shared with the client and lives in ``grctl.codec``."""

from grctl.codec import (
    CheckFn,
    CodecRegistry,
    DecodeFn,
    EncodeFn,
    convert,
    dec_hook,
    decode,
    default_codec,
    enc_hook,
    encode,
    normalize,
    to_builtins,
)

__all__ = [
    "CheckFn",
    "CodecRegistry",
    "DecodeFn",
    "EncodeFn",
    "convert",
    "dec_hook",
    "decode",
    "default_codec",
    "enc_hook",
    "encode",
    "normalize",
    "to_builtins",
]
