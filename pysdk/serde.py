"""Serializers, under the module name Restate uses (`restate.serde`)."""
from ._serde import BytesSerde, DefaultSerde, JsonSerde, PydanticJsonSerde, Serde

__all__ = ["BytesSerde", "DefaultSerde", "JsonSerde", "PydanticJsonSerde", "Serde"]
