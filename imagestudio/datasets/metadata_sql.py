"""One metadata field of a sample in SQL, for any field name.

Django's key transforms write the name into a JSON path on SQLite (`$."name"`), where a double quote cannot be
escaped: a field named `say "hi"` read as missing everywhere (its LFs abstained, its export column was empty).
These read the name as a bound parameter on both databases: `->>` and `?` on Postgres, `json_each` on SQLite.
"""

from django.db.models import BooleanField, F, Func, TextField, Value


class _MetadataKey(Func):
    """SQL around (the metadata column, the name as a parameter): `postgres_sql` and `sqlite_sql` templates."""

    postgres_sql = sqlite_sql = ""

    def __init__(self, field: str):
        super().__init__(F("metadata"), Value(field))

    def _render(self, compiler, template):
        (metadata, metadata_params), (key, key_params) = (compiler.compile(e) for e in self.get_source_expressions())
        return template.format(metadata=metadata, key=key), (*metadata_params, *key_params)

    def as_sql(self, compiler, connection, **extra):
        return self._render(compiler, self.postgres_sql)

    def as_sqlite(self, compiler, connection, **extra):
        return self._render(compiler, self.sqlite_sql)


class MetadataText(_MetadataKey):
    """The field's value as `->>` gives it (text; true / false; JSON text for an object or a list; SQLite: numbers
    as numbers); NULL where the sample lacks it or holds null."""

    output_field = TextField()
    postgres_sql = "({metadata} ->> {key})"
    # json_each gives true / false as 1 / 0: a keyword LF on "true" matched nothing there, the export wrote 1
    sqlite_sql = ("(SELECT CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE value END "
                  "FROM json_each({metadata}) WHERE key = {key})")


class MetadataHasField(_MetadataKey):
    """Whether the sample's metadata has the field (null values included)."""

    output_field = BooleanField()
    postgres_sql = "({metadata} ? {key})"
    sqlite_sql = "EXISTS (SELECT 1 FROM json_each({metadata}) WHERE key = {key})"
