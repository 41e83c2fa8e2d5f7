# Cloud Monitoring as code, from the JSON in monitoring/ (deploy.sh applies the same files with
# gcloud): log-based metrics on the services' log lines, alert policies, one dashboard.
locals {
  monitoring_dir = "${path.module}/../monitoring"
  log_metrics = {
    for name in fileset("${local.monitoring_dir}/log-metrics", "*.json") :
    trimsuffix(name, ".json") => jsondecode(file("${local.monitoring_dir}/log-metrics/${name}"))
  }
  # The policies and the dashboard read Cloud Run's metrics (and logs from Cloud Run revisions).
  alert_policies = local.cloud_run ? {
    for name in fileset("${local.monitoring_dir}/alert-policies", "*.json") :
    trimsuffix(name, ".json") => jsondecode(file("${local.monitoring_dir}/alert-policies/${name}"))
  } : {}
}

resource "google_logging_metric" "binpay" {
  for_each         = local.log_metrics
  name             = each.value.name
  description      = each.value.description
  filter           = each.value.filter
  label_extractors = try(each.value.labelExtractors, {})
  value_extractor  = try(each.value.valueExtractor, null)

  # Distribution metrics (a duration read from a log field) say how to bucket it.
  dynamic "bucket_options" {
    for_each = try([each.value.bucketOptions.exponentialBuckets], [])
    content {
      exponential_buckets {
        num_finite_buckets = bucket_options.value.numFiniteBuckets
        growth_factor      = bucket_options.value.growthFactor
        scale              = bucket_options.value.scale
      }
    }
  }

  metric_descriptor {
    metric_kind = each.value.metricDescriptor.metricKind
    value_type  = each.value.metricDescriptor.valueType
    unit        = each.value.metricDescriptor.unit

    dynamic "labels" {
      for_each = try(each.value.metricDescriptor.labels, [])
      content {
        key         = labels.value.key
        value_type  = labels.value.valueType
        description = labels.value.description
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# Cloud Monitoring answers 404 to a policy on a log-based metric until the metric is available,
# up to 10 minutes after it was created: the first apply waits once (time_sleep only waits on create).
resource "time_sleep" "log_metrics_available" {
  count           = length(local.alert_policies) > 0 ? 1 : 0
  create_duration = "600s"
  depends_on      = [google_logging_metric.binpay]
}

resource "google_monitoring_alert_policy" "binpay" {
  for_each              = local.alert_policies
  display_name          = each.value.displayName
  combiner              = each.value.combiner
  notification_channels = var.notification_channels

  documentation {
    content   = each.value.documentation.content
    mime_type = each.value.documentation.mimeType
  }

  dynamic "conditions" {
    for_each = each.value.conditions
    content {
      display_name = conditions.value.displayName

      condition_threshold {
        filter             = conditions.value.conditionThreshold.filter
        denominator_filter = try(conditions.value.conditionThreshold.denominatorFilter, null)
        comparison         = conditions.value.conditionThreshold.comparison
        threshold_value    = conditions.value.conditionThreshold.thresholdValue
        duration           = conditions.value.conditionThreshold.duration

        dynamic "aggregations" {
          for_each = conditions.value.conditionThreshold.aggregations
          content {
            alignment_period     = aggregations.value.alignmentPeriod
            per_series_aligner   = aggregations.value.perSeriesAligner
            cross_series_reducer = aggregations.value.crossSeriesReducer
            group_by_fields      = try(aggregations.value.groupByFields, null)
          }
        }

        dynamic "denominator_aggregations" {
          for_each = try(conditions.value.conditionThreshold.denominatorAggregations, [])
          content {
            alignment_period     = denominator_aggregations.value.alignmentPeriod
            per_series_aligner   = denominator_aggregations.value.perSeriesAligner
            cross_series_reducer = denominator_aggregations.value.crossSeriesReducer
            group_by_fields      = try(denominator_aggregations.value.groupByFields, null)
          }
        }
      }
    }
  }

  alert_strategy {
    auto_close = each.value.alertStrategy.autoClose
  }

  depends_on = [time_sleep.log_metrics_available]
}

resource "google_monitoring_dashboard" "binpay" {
  count          = local.cloud_run ? 1 : 0
  dashboard_json = file("${local.monitoring_dir}/dashboard.json")
  depends_on     = [google_logging_metric.binpay]
}
