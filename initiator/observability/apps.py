from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Metrics and traces"

    def ready(self) -> None:
        # Before the WSGI handler loads its middleware (and in every management command).
        from binpay_common.tracing import exporter_from_env
        from observability import signals, tracing

        tracing.configure(exporter_from_env())
        signals.connect()
