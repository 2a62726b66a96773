from django.contrib import admin
from django.urls import path

from tests.apps.djproject.orm import views

urlpatterns = [
    path("", views.index),
    path("items", views.items),
    path("stats", views.stats),
    path("admin/", admin.site.urls),
]
