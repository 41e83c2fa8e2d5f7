from django.contrib.auth import views as auth_views
from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.payment_list, name="payments"),
    path("payments/<uuid:payment_id>/", views.payment_detail, name="payment"),
    path("payments/<uuid:payment_id>/settle", views.settle, name="settle"),
    path("attention/", views.needs_attention, name="attention"),
    path("dead-letters/", views.dead_letters, name="dead-letters"),
    path("system/", views.system, name="system"),
]
