"""Prometheus metrics: what operations watch on `/metrics`.

Defined once per process (prometheus-client's default registry); every app instance in the
process shares them, which is what a scrape of one process should show.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter("hct_http_requests_total", "HTTP requests by route, method and status",
                        ["route", "method", "status"])
HTTP_LATENCY = Histogram("hct_http_request_duration_seconds", "HTTP request latency by route",
                         ["route", "method"], buckets=_LATENCY_BUCKETS)
PREDICTION_LATENCY = Histogram("hct_prediction_latency_seconds",
                               "Time from a sample entering the batcher to its prediction",
                               buckets=_LATENCY_BUCKETS)
INFERENCE_SECONDS = Histogram("hct_inference_seconds", "onnxruntime session.run time per batch",
                              ["provider"], buckets=_LATENCY_BUCKETS)
BATCH_SIZE = Histogram("hct_batch_size", "Samples per model call formed by the micro-batcher",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
QUEUE_DEPTH = Gauge("hct_queue_depth", "Samples waiting in the micro-batcher queue")
QUEUE_REJECTED = Counter("hct_queue_rejected_total", "Requests refused because the queue was full")
MODEL_INFO = Gauge("hct_model_info", "The model being served (value 1)",
                   ["name", "version", "sha256", "provider"])
PREDICTIONS_STORED = Counter("hct_predictions_stored_total", "Predictions written to the store",
                             ["source"])
INGESTION_ERRORS = Counter("hct_ingestion_errors_total", "Inputs rejected, by error kind",
                           ["kind"])
JOB_ITEMS = Counter("hct_batch_job_items_total", "Batch job samples processed, by outcome",
                    ["outcome"])
JOBS = Counter("hct_batch_jobs_total", "Batch jobs reaching a final status", ["status"])

# Monitoring (service/monitoring.py): one series per served model version, over rolling windows.
MONITOR_REFERENCE = Gauge("hct_monitor_reference",
                          "1 when the model's card carries a monitoring reference, else 0",
                          ["model_version"])
MONITOR_WINDOW_SAMPLES = Gauge("hct_monitor_window_samples",
                               "Samples in the monitor's rolling window (inputs: every stored "
                               "prediction; paired: those with a measured hematocrit)",
                               ["model_version", "kind"])
DRIFT_STATISTIC = Gauge("hct_drift_statistic",
                        "Scaled KS distance of the window's values to the training reference",
                        ["model_version", "feature"])
DRIFT_THRESHOLD = Gauge("hct_drift_threshold", "Calibrated alarm threshold of hct_drift_statistic",
                        ["model_version"])
DRIFT_ALARM = Gauge("hct_drift_alarm", "1 while any drift statistic is above its threshold",
                    ["model_version"])
AGREEMENT_BIAS = Gauge("hct_agreement_bias",
                       "Mean predicted minus measured hematocrit over the window (points)",
                       ["model_version"])
AGREEMENT_MAE = Gauge("hct_agreement_mae",
                      "Mean absolute predicted minus measured hematocrit (points)",
                      ["model_version"])
AGREEMENT_ALARM = Gauge("hct_agreement_bias_alarm",
                        "1 while the agreement bias is beyond its calibrated threshold",
                        ["model_version"])
INTERVAL_COVERAGE = Gauge("hct_interval_coverage",
                          "Share of measured hematocrit values inside the prediction interval",
                          ["model_version"])
QUALITY_SHARE = Gauge("hct_quality_share", "Share of sample-quality verdicts in the window",
                      ["model_version", "status"])
BULK_REJECTED = Counter("hct_bulk_rejected_total",
                        "Bulk requests refused because the in-flight bulk bytes were at the limit")

# HL7 outbox (service/delivery/mllp_sender.py): rows per status, refreshed by the sender. Every
# process's sender counts the same table, so across processes the maximum is the figure.
HL7_OUTBOX_MESSAGES = Gauge("hct_hl7_outbox_messages",
                            "HL7 outbox messages by status (pending, sent, rejected, failed)",
                            ["status"], multiprocess_mode="max")
