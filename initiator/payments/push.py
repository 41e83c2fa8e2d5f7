"""POST /pubsub/push: Pub/Sub push deliveries of payment.completed and payment.rollback, and of
dead-lettered messages (recognised by the envelope's subscription)."""

import base64
import binascii
import logging

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApplicationError
from core.serializers import ErrorSerializer
from payments.authentication import PubSubPushAuthentication
from payments.dead_letters import handle_dead_letter, is_dead_letter_subscription
from payments.handlers import TransientError, handle_outcome_message

logger = logging.getLogger(__name__)


PushResult = inline_serializer("PushResult", {"status": serializers.CharField()})


class PubSubPushView(APIView):
    authentication_classes = [PubSubPushAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="pubsub_push",
        description=(
            "Pub/Sub push endpoint for payment.completed and payment.rollback (dispatch on event_type), "
            "and for the dead-letter subscription (PUBSUB_DEAD_LETTER_SUBSCRIPTION)."
        ),
        request=inline_serializer(
            "PushEnvelope",
            {
                "message": inline_serializer(
                    "PushMessage",
                    {
                        "data": serializers.CharField(help_text="base64"),
                        "attributes": serializers.DictField(child=serializers.CharField()),
                        "messageId": serializers.CharField(),
                        "publishTime": serializers.CharField(),
                    },
                ),
                "subscription": serializers.CharField(),
                "deliveryAttempt": serializers.IntegerField(required=False),
            },
        ),
        responses={200: PushResult, 401: ErrorSerializer, 403: ErrorSerializer, 503: ErrorSerializer},
    )
    def post(self, request):
        envelope = request.data if isinstance(request.data, dict) else {}
        message = envelope.get("message")
        if not isinstance(message, dict):
            logger.error("push request without a message acknowledged: %r", list(envelope)[:10])
            return Response({"status": "poison"})
        attributes = message.get("attributes") or {}
        if not isinstance(attributes, dict):
            attributes = {}
        # Pub/Sub attributes are strings; anything else in a hand-made envelope is dropped.
        attributes = {key: value for key, value in attributes.items() if isinstance(value, str)}
        raw_data = message.get("data") or ""
        try:
            data = base64.b64decode(raw_data, validate=True)
        except (binascii.Error, TypeError, ValueError):
            data = None
        subscription = envelope.get("subscription")
        try:
            if is_dead_letter_subscription(subscription):
                result = self.dead_letter(envelope, message, data, attributes)
            elif data is None:
                logger.error("push message %s with undecodable data acknowledged", message.get("messageId"))
                result = "poison"
            else:
                result = handle_outcome_message(data=data, attributes=attributes)
        except TransientError as error:
            logger.warning("push delivery %s failed transiently: %s", message.get("messageId"), error)
            raise ApplicationError(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                type="api_error",
                code="temporarily_unavailable",
                message="The event could not be processed now; redeliver it.",
            ) from None
        logger.info(
            "push delivery %s from %s (attempt %s): %s",
            message.get("messageId"),
            envelope.get("subscription"),
            envelope.get("deliveryAttempt"),
            result,
        )
        return Response({"status": result})

    @staticmethod
    def dead_letter(envelope: dict, message: dict, data: bytes | None, attributes: dict) -> str:
        message_id = message.get("messageId") or message.get("message_id")
        if not isinstance(message_id, str) or not message_id or len(message_id) > 100:
            logger.error("dead-letter push without a usable messageId acknowledged")
            return "poison"
        delivery_attempt = envelope.get("deliveryAttempt")
        if not isinstance(delivery_attempt, int) or isinstance(delivery_attempt, bool) or delivery_attempt < 0:
            delivery_attempt = None
        if data is None:
            # Keep what arrived, even if it is not base64: a person will read it.
            data = str(message.get("data")).encode()
        return handle_dead_letter(
            subscription=str(envelope.get("subscription"))[:255],
            message_id=message_id,
            data=data,
            attributes=attributes,
            delivery_attempt=delivery_attempt,
        )
