def validated(serializer_class, data):
    """The validated data of `data` (a body or query parameters), or the serializer's 400."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
