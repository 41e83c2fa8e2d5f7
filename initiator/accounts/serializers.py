from rest_framework import serializers

from accounts.models import Deposit, User
from core.serializers import AmountField, CurrencyField, PrintableCharField, ProviderIdField, StrictSerializer

PAYMENT_METHOD_HELP = "The provider's payment method the user's payments are charged to by default (Stripe: pm_...)."
CUSTOMER_HELP = "The provider's customer the payment method belongs to, if any (Stripe: cus_...)."


class UserCreateInputSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    name = PrintableCharField(max_length=200)
    currency = CurrencyField(required=False, help_text="ISO 4217 code, upper case; default DEFAULT_CURRENCY.")
    default_payment_method = ProviderIdField(required=False, help_text=PAYMENT_METHOD_HELP)
    provider_customer = ProviderIdField(required=False, help_text=CUSTOMER_HELP)


class PaymentMethodInputSerializer(StrictSerializer):
    default_payment_method = ProviderIdField(help_text=PAYMENT_METHOD_HELP)
    provider_customer = ProviderIdField(required=False, allow_null=True, help_text=CUSTOMER_HELP)


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
    default_payment_method = serializers.CharField(allow_null=True, help_text=PAYMENT_METHOD_HELP)
    provider_customer = serializers.CharField(allow_null=True, help_text=CUSTOMER_HELP)
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
