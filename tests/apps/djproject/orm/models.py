"""What the ORM view lists."""

from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100)
    price = models.IntegerField()

    def __str__(self) -> str:
        return self.name
