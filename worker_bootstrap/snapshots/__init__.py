"""Checkpoint snapshots: a suggestion's ``OPTFLEET_CHECKPOINT_DIR`` travels with the suggestion
through S3, so whichever instance takes it over continues from there (docs/agent.md, "Checkpoints
that travel").

``marker`` (the evaluation's word that a checkpoint is complete) and ``location`` (the
``s3://bucket/prefix`` setting) need only the standard library; ``store`` talks to S3 through an
injected boto3 client; ``uploads`` decides when to snapshot, ``restore`` brings the latest
snapshot back before an evaluation starts, ``closing`` deletes them once the observation landed.
"""
