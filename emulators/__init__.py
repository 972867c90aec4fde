"""Local stand-ins for the AWS services an instance and the cost code talk to.

- ``imds``: one EC2 instance's metadata service (IMDSv2), with a control API for spot notices;
- ``pricing``: the Price List API and EC2's spot price history and instance listing.

Used by the demo, the tests and the benchmarks; they ship apart from the operator CLI because they
are test equipment, not part of what an operator runs against AWS. Standard library only: they
import nothing of ours (tests/server/test_layers.py).
"""
