from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "imagestudio.accounts"
    label = "accounts"
