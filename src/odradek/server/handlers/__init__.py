"""One module per API; importing this package registers every handler."""

from odradek.server.handlers import (  # noqa: F401
    api_versions,
    create_partitions,
    create_topics,
    delete_topics,
    describe_cluster,
    describe_configs,
    fetch,
    find_coordinator,
    list_offsets,
    metadata,
    produce,
)
