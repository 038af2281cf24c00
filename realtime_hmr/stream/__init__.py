"""Streaming: the versioned wire format (``schema``, pure), the ZeroMQ publisher/subscriber and OSC/VMC output.

Only ``schema`` is imported here; the socket modules import pyzmq / python-osc and are loaded on use.
"""

from realtime_hmr.stream.schema import FORMAT_VERSION, Message, decode, encode_frame, encode_meta

__all__ = ["FORMAT_VERSION", "Message", "decode", "encode_frame", "encode_meta"]
