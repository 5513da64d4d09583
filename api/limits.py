"""Bounds shared by request serializers."""

MAX_INT = 2**63 - 1  # the database's bigint: larger ids or counts cannot exist, so they are a 400
