"""The ground every job stands on: storage, configs, table schemas, redaction, runs and their lifecycle, manifests, checkpoints, the catalog of committed runs."""
