"""What each user spent, per day (UTC): the totals that USER_DAILY_BUDGET_USD is held against.

Kept apart from the chats, so deleting a chat does not give its spending back.
"""

from django.conf import settings
from django.db import models


class UsageDay(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    turns = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="one_usage_row_per_user_and_day")]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.day}: ${self.cost_usd:.4f}"
