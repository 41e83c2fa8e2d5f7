from rest_framework import serializers

from accounts.models import Deposit, User
from core.serializers import AmountField, CurrencyField, PrintableCharField, StrictSerializer


class UserCreateInputSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    name = PrintableCharField(max_length=200)
    currency = CurrencyField(required=False, help_text="ISO 4217 code, upper case; default DEFAULT_CURRENCY.")


class DepositInputSerializer(StrictSerializer):
    amount = AmountField()
    currency = CurrencyField(required=False, help_text="ISO 4217 code, upper case; default: the account's.")


class AccountOutputSerializer(serializers.Serializer):
    currency = serializers.CharField()
    balance = serializers.IntegerField(help_text="Minor units.")
    held = serializers.IntegerField(help_text="Minor units reserved by pending payments.")
    available = serializers.IntegerField(help_text="balance - held, minor units.")


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    object = serializers.SerializerMethodField()
    email = serializers.EmailField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    account = AccountOutputSerializer()

    def get_object(self, user: User) -> str:
        return "user"


class UserListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    url = serializers.CharField()
    data = UserOutputSerializer(many=True)
    has_more = serializers.BooleanField()


class DepositOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    object = serializers.SerializerMethodField()
    user_id = serializers.IntegerField()
    amount = serializers.IntegerField(help_text="Minor units.")
    currency = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_object(self, deposit: Deposit) -> str:
        return "deposit"


class DepositListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    url = serializers.CharField()
    data = DepositOutputSerializer(many=True)
    has_more = serializers.BooleanField()
