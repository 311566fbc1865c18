"""The library: ready-made agents anyone may install as their own copy. They are data (a data migration), not code."""

from django.db import models


class LibraryAgent(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField()
    graph = models.JSONField()  # a graph as saved (PROTOCOL §6), runnable offline: no block needs the network or a model
    # What each run input means, by "node.input" (shown over the blocks' own descriptions of their inputs).
    input_descriptions = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "slug"]

    def __str__(self) -> str:
        return self.slug
