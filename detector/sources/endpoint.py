"""Elastic Defend (Elastic Endpoint) documents: already ECS, produced on the host with no ingest
pipeline mapping fields, so normalising is copying the subset the rule and alerts read."""

from __future__ import annotations

from detector.fields import values
from detector.sources.base import Event, Record, Source, copy_ecs_subset

_DATASET = "endpoint.events.process"


def normalize(record: Record) -> list[Event]:
    """Copy the ECS subset, nested or flat-dotted keys alike, keeping types.

    Every output field comes from the same-named ECS field: @timestamp and event.created (truncated
    to ms), event.{category,type} (a single string becomes a one-element list), event.{action,code,
    kind,id,dataset,module}, host.{name,hostname,id,os.type,os.family}, user.{name,domain,id},
    process.{name,executable,pid,entity_id,command_line,pe.original_file_name} and process.parent.{name,
    executable,pid,command_line,entity_id}. event.dataset falls back to data_stream.dataset.
    Nothing is derived: a field Defend did not send stays unset (e.g. parent.command_line is "" in the
    sample and so is omitted).
    """
    event = copy_ecs_subset(record)
    if "event" not in event or "dataset" not in event["event"]:
        # ECS lets any field hold an array; a one-element data_stream.dataset is still the dataset.
        dataset = next((v for v in values(record, "data_stream.dataset") if isinstance(v, str) and v), None)
        if dataset is not None:
            event.setdefault("event", {})["dataset"] = dataset
    return [event]


def detect(record: Record) -> bool:
    """agent.type "endpoint", event.module "endpoint" or an endpoint.* dataset, each as a value or
    among the values of an array (as Elasticsearch indexes either)."""
    if "endpoint" in values(record, "agent.type") or "endpoint" in values(record, "event.module"):
        return True
    return any(
        isinstance(v, str) and v.startswith("endpoint.")
        for field in ("event.dataset", "data_stream.dataset")
        for v in values(record, field)
    )


SOURCE = Source(
    name="endpoint",
    normalize=normalize,
    detect=detect,
    description=f"Elastic Defend (Elastic Endpoint) ECS documents, e.g. {_DATASET}",
    fields=(
        ("process.*", "process.* (same ECS fields)"),
        ("event.*, host.*, user.*", "same ECS fields"),
        ("event.dataset", "event.dataset, else data_stream.dataset"),
    ),
)

__all__ = ["SOURCE"]
