"""Full-text search indexes on PostgreSQL (GIN over the tsvectors that chat.selectors.search_sessions queries);
other databases search without them."""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

INDEXES = {
    "message": GinIndex(SearchVector("body", config="simple"), name="message_body_search"),
    "chatsession": GinIndex(SearchVector("title", config="simple"), name="session_title_search"),
}


def add_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for model_name, index in INDEXES.items():
        schema_editor.add_index(apps.get_model("chat", model_name), index)


def remove_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for model_name, index in INDEXES.items():
        schema_editor.remove_index(apps.get_model("chat", model_name), index)


class Migration(migrations.Migration):

    dependencies = [("chat", "0009_conversations")]

    operations = [migrations.RunPython(add_indexes, remove_indexes)]
