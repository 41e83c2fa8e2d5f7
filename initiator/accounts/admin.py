from django.contrib import admin

from accounts.models import Account, Deposit, User


class AccountInline(admin.StackedInline):
    model = Account
    can_delete = False
    readonly_fields = ("balance", "held", "available", "updated_at")

    @admin.display(description="available")
    def available(self, account: Account) -> int:
        return account.available


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "email", "created_at")
    search_fields = ("name", "email")
    inlines = [AccountInline]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("user", "currency", "balance", "held", "available", "updated_at")
    list_filter = ("currency",)
    # Balances change only through deposits and payments, so the ledger stays consistent.
    readonly_fields = ("balance", "held", "updated_at")
    search_fields = ("user__email",)

    @admin.display(description="available")
    def available(self, account: Account) -> int:
        return account.available


@admin.register(Deposit)
class DepositAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "amount", "currency", "created_at")
    readonly_fields = [field.name for field in Deposit._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
