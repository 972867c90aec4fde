"""optfleet's AWS CDK app: one EC2 worker fleet per experiment (see docs/infra.md).

Import the construct from `infra.worker_fleet` and the stack from `infra.fleet_stack`; this
package itself imports nothing, so `infra.runtime` runs on instances without the CDK installed.
"""
