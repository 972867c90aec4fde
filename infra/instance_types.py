"""Known EC2 instance families and sizes, to reject typos before a deploy fails half-way.

The list is deliberately a plain table: CloudFormation only rejects a bad instance type when the
Auto Scaling group tries to launch it, minutes into a deploy. A family missing here can be added
in one line; `architecture_of` also decides which Amazon Linux 2023 image the fleet boots.
"""

from __future__ import annotations

import re

# Graviton (arm64) families; every other known family is x86_64. Whitespace-separated tables.
_ARM64_FAMILIES = frozenset(
    """
    a1 c6g c6gd c6gn c7g c7gd c7gn c8g c8gd c8gn g5g hpc7g im4gn is4gen i4g i8g i8ge m6g m6gd
    m7g m7gd m8g m8gd r6g r6gd r7g r7gd r8g r8gd t4g x2gd x8g
    """.split()  # noqa: SIM905 - a table is easier to extend than a list literal
)

_X86_64_FAMILIES = frozenset(
    """
    c4 c5 c5a c5ad c5d c5n c6a c6i c6id c6in c7a c7i c7i-flex c8i c8i-flex
    d2 d3 d3en dl1 dl2q f1 f2 g4ad g4dn g5 g6 g6e g6f gr6 g7e h1 hpc6a hpc6id hpc7a
    i2 i3 i3en i4i i7i i7ie inf1 inf2 m4 m5 m5a m5ad m5d m5dn m5n m5zn m6a m6i m6id m6idn m6in
    m7a m7i m7i-flex m8a m8i m8i-flex p3 p3dn p4d p4de p5 p5e p5en p6-b200 r4 r5 r5a r5ad r5b
    r5d r5dn r5n r6a r6i r6id r6idn r6in r7a r7i r7iz r8a r8i r8i-flex t2 t3 t3a trn1 trn1n trn2
    u-3tb1 u-6tb1 u-9tb1 u-12tb1 u7i-12tb vt1 x1 x1e x2idn x2iedn x2iezn z1d
    """.split()  # noqa: SIM905
)

KNOWN_FAMILIES = _ARM64_FAMILIES | _X86_64_FAMILIES

_SIZE = re.compile(
    r"^(nano|micro|small|medium|large|xlarge|[1-9][0-9]?xlarge|metal|metal-[0-9]+xl)$"
)


class UnknownInstanceType(ValueError):
    """Raised with a message that says what is wrong with an instance type name."""


def check_instance_type(name: str) -> str:
    """Return ``name`` if it looks like ``family.size`` with a known family; raise otherwise."""
    family, dot, size = name.partition(".")
    if not dot or not family or not size:
        raise UnknownInstanceType(f"{name!r} is not of the form family.size (e.g. m7i.large)")
    if family not in KNOWN_FAMILIES:
        raise UnknownInstanceType(f"{name!r} has an unknown instance family {family!r}")
    if not _SIZE.match(size):
        raise UnknownInstanceType(f"{name!r} has an unknown size {size!r}")
    return name


def architecture_of(name: str) -> str:
    """Return ``arm64`` or ``x86_64`` for a valid instance type name."""
    return "arm64" if name.partition(".")[0] in _ARM64_FAMILIES else "x86_64"
