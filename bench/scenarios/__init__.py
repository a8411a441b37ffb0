"""The benchmark scenarios; each returns the report sections it measured."""
