"""Microsoft 365 Defender: what its mapping (maps/m365_defender.toml) cannot say as data.

The mapping does the rest; this module only registers the built-in step the map names, and is imported
by the source registry before the map loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.fields import node, values
from detector.sources.base import Event, as_mapping, put
from detector.sources.mapping import after_step

__all__ = ["m365_defender_after"]

# Lower-cased table-name fragment -> event.category, in the pipeline's order.
_CATEGORIES = (
    ("devicelogonevents", "authentication"),
    ("deviceevents", "host"),
    ("deviceinfo", "host"),
    ("devicefileevents", "file"),
    ("devicefilecertificateinfo", "file"),
    ("deviceprocessevents", "process"),
    ("deviceimageloadevents", "library"),
    ("devicenetworkevents", "network"),
    ("devicenetworkinfo", "network"),
    ("deviceregistryevents", "registry"),
)
# Lower-cased ActionType fragment -> event.type, in the pipeline's order.
_TYPES = (
    (("connectionsuccess",), "end"),
    (("connectionfailed",), "denied"),
    (("connectionrequest", "listeningconnectioncreated", "processcreated"), "start"),
    (("inboundconnectionaccepted",), "allowed"),
    (("registrykeycreated",), "creation"),
    (("registrykeydeleted", "registryvaluedeleted"), "deletion"),
    (("registrykeyrenamed", "registryvalueset"), "change"),
)
_INFO_ACTIONS = ("openprocess", "connectionfound", "networksignatureinspected", "devicenetworkinfo")


@after_step("m365_defender")
def m365_defender_after(record: Mapping[str, Any], event: Event) -> None:
    """A record's `properties` must be an object, and event.category / event.type come by substring.

    A `properties` that is not an object is a record of the wrong structure (NormalizeError), where rows
    reading properties.* would quietly find nothing. The pipeline gives a record every category whose
    fragment its table name contains, and every type whose fragments its ActionType contains ("info" also
    from the category), accumulating a list: a table looks up one whole value and a row writes one.
    """
    as_mapping(node(record, "properties"), "properties")
    tables = [v.lower() for v in values(record, "category") if isinstance(v, str)]
    actions = [v for v in values(event, "event.action") if isinstance(v, str)]
    categories = [cat for frag, cat in _CATEGORIES if any(frag in t for t in tables)]
    types: list[str] = []
    if any(c in ("authentication", "host", "file") for c in categories) or any(
        a in action for a in _INFO_ACTIONS for action in actions
    ):
        types.append("info")
    image_load = any("deviceimageloadevents" in t for t in tables)
    for frags, typ in _TYPES:
        if any(f in action for f in frags for action in actions) or (typ == "start" and image_load):
            types.append(typ)
    put(event, "event.category", categories or None)
    put(event, "event.type", types or None)
