from django.contrib import admin

from tests.apps.djproject.orm.models import Item

admin.site.register(Item)
