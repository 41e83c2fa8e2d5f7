resource "google_pubsub_topic" "topics" {
  for_each   = local.topics
  name       = each.value
  depends_on = [google_project_service.apis]
}

locals {
  # Dead-lettered push subscriptions: subscription name => (topic key, push endpoint).
  push_subscriptions = {
    "initiator-sub"  = { topic = "initiation", endpoint = local.processor_push_url }
    "processor-sub"  = { topic = "rollback", endpoint = local.initiator_push_url }
    "completion-sub" = { topic = "completion", endpoint = local.initiator_push_url }
  }
}

resource "google_pubsub_subscription" "push" {
  for_each             = local.push_subscriptions
  name                 = each.key
  topic                = google_pubsub_topic.topics[each.value.topic].id
  ack_deadline_seconds = var.ack_deadline_seconds

  # Cloud Run: push with an OIDC token; GKE: no push_config, the workers pull.
  dynamic "push_config" {
    for_each = local.cloud_run ? [each.value.endpoint] : []
    content {
      push_endpoint = push_config.value
      oidc_token {
        service_account_email = google_service_account.pubsub_push.email
        audience              = push_config.value
      }
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topics["dead_letter"].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

# The initiator consumes the dead letters (stores each one, moves its payment to needs_attention):
# pushed to /pubsub/push on Cloud Run (recognised by this subscription's name), pulled by
# consume_outcomes on GKE. Kept 7 days while undelivered.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "dead-letter-sub"
  topic                      = google_pubsub_topic.topics["dead_letter"].id
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = "604800s"

  dynamic "push_config" {
    for_each = local.cloud_run ? [local.initiator_push_url] : []
    content {
      push_endpoint = push_config.value
      oidc_token {
        service_account_email = google_service_account.pubsub_push.email
        audience              = push_config.value
      }
    }
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }

  expiration_policy {
    ttl = ""
  }
}

# The Pub/Sub service agent forwards to the dead-letter topic and acks the source message.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.topics["dead_letter"].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_source_subscriber" {
  for_each     = google_pubsub_subscription.push
  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
