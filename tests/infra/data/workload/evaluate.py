"""A tiny evaluation used by the infra tests' workload asset."""

import idna

print(idna.encode("example.com").decode())
