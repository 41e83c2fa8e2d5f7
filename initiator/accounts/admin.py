from django.contrib import admin

from accounts.models import Account, Deposit, User


class AccountInline(admin.StackedInline):
    model = Account
    can_delete = False
    # Currency, owner and balances change only through the services (user_create, deposit_create,
    # payment settlement), so every change has a record.
    readonly_fields = ("currency", "balance", "held", "available", "updated_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="available")
    def available(self, account: Account) -> int:
        return account.available


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "email", "created_at")
    search_fields = ("name", "email")
    inlines = [AccountInline]

    def has_add_permission(self, request) -> bool:
        # A user comes with its account: create users through the API (POST /users).
        return False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("user", "currency", "balance", "held", "available", "updated_at")
    list_filter = ("currency",)
    readonly_fields = ("user", "currency", "balance", "held", "available", "updated_at")
    search_fields = ("user__email",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Nothing on an account is editable by hand: balances change only through deposits and payments.
        return False

    @admin.display(description="available")
    def available(self, account: Account) -> int:
        return account.available


@admin.register(Deposit)
class DepositAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "amount", "currency", "created_by", "created_at")
    readonly_fields = [field.name for field in Deposit._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
