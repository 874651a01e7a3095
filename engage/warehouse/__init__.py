"""The SQL warehouse: schema, migrations, connections and upserts."""
