"""The matrix contract's routes (see ``tests.apps.matrix_apps``)."""

from django.urls import path

from tests.apps.djproject import views

urlpatterns = [
    path("hello", views.hello, name="hello"),
    path("links", views.links),
    path("form", views.form),
    path("json", views.json_echo),
    path("upload", views.upload),
    path("stream", views.stream),
    path("boom", views.boom),
]
